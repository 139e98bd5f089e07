"""The scheduler: a periodic task runs once per period across workers, and may queue jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.jobs.scheduler import Periodic, Scheduler
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.models import Job
from visionloop.server.store import jobs as job_store

PERIOD = 0.4


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_db_engine(settings.database_url)
    yield sessionmaker(write_engine(engine), expire_on_commit=False)
    engine.dispose()


def _queue_probe(session: Session) -> None:
    job_store.enqueue(session, kind="sleep", params={}, created_by="scheduler", max_attempts=1)


def test_a_periodic_task_runs_once_per_period_across_workers(
    sessions: sessionmaker[Session],
) -> None:
    entries = [Periodic(name="probe", period_seconds=PERIOD, run=_queue_probe)]
    first, second = Scheduler(entries), Scheduler(entries)  # two workers
    assert first.run_due(sessions) == ["probe"]  # never ran: due at once
    assert second.run_due(sessions) == []  # this period is taken
    time.sleep(PERIOD + 0.05)
    assert second.run_due(sessions) == ["probe"]
    assert first.run_due(sessions) == []
    with sessions() as session:
        jobs = list(session.scalars(select(Job)))
    assert [(j.kind, j.created_by) for j in jobs] == [("sleep", "scheduler")] * 2


def test_a_failing_task_is_logged_and_runs_again_next_period(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(_session: Session) -> None:
        calls.append(1)
        raise RuntimeError("policy check broke")

    scheduler = Scheduler([Periodic(name="broken", period_seconds=PERIOD, run=broken)])
    assert scheduler.run_due(sessions) == []
    assert "periodic task broken failed" in caplog.text
    assert scheduler.run_due(sessions) == []  # not again within the period
    time.sleep(PERIOD + 0.05)
    scheduler.run_due(sessions)
    assert len(calls) == 2


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scheduler([Periodic("a", 1, _queue_probe), Periodic("a", 2, _queue_probe)])
