"""Periodic work inside the workers: a table of named tasks, each run once per period across all
workers (the database decides which worker takes a tick, see ``store.jobs.take_tick``).

A task is a function of a database session that may queue jobs (``store.jobs.enqueue`` with
``created_by="scheduler"``); it runs in the worker process, so it must be quick: heavy work
belongs in the job it queues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.server.store import jobs as job_store

log = logging.getLogger(__name__)

RECHECK_SECONDS = 10.0
"""How long a worker waits before asking again about a task that another worker just ran."""


@dataclass(frozen=True)
class Periodic:
    """``run(session)`` every ``period_seconds``, in one transaction."""

    name: str
    period_seconds: float
    run: Callable[[Session], None]


def default_schedule(settings: Settings) -> list[Periodic]:
    """The periodic tasks visionloop ships: the retraining policy and the drift checks."""
    from visionloop.jobs.train import retrain_schedule
    from visionloop.monitoring.jobs import drift_schedule

    return [*retrain_schedule(settings), *drift_schedule(settings)]


class Scheduler:
    """Runs the due tasks of ``entries`` when asked (the worker asks at every poll)."""

    def __init__(self, entries: Sequence[Periodic]) -> None:
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic task names must be unique: {names}")
        self.entries = list(entries)
        self._next_check: dict[str, float] = {}

    def run_due(self, sessions: sessionmaker[Session]) -> list[str]:
        """Run every task due now that no other worker took; returns the names run."""
        ran = []
        for entry in self.entries:
            now = time.monotonic()
            if now < self._next_check.get(entry.name, 0.0):
                continue
            with sessions() as session, session.begin():
                due = job_store.take_tick(
                    session, name=entry.name, period_seconds=entry.period_seconds
                )
            if not due:
                self._next_check[entry.name] = now + min(entry.period_seconds, RECHECK_SECONDS)
                continue
            self._next_check[entry.name] = now + entry.period_seconds
            try:
                with sessions() as session, session.begin():
                    entry.run(session)
                ran.append(entry.name)
            except Exception:
                log.exception("periodic task %s failed (it runs again next period)", entry.name)
        return ran
