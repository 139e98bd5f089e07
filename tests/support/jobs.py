"""Job fixtures: a test-only ``sleep`` kind, fast job settings, and worker processes.

- ``SLEEP``: a job kind that sleeps ``seconds`` in ``steps``, reporting progress and printing a
  line per step; it appends ``start <job> <attempt> <pid>`` and ``done <job>`` lines to
  ``marker`` (a file), and can ``fail`` (raise) or ``crash`` (exit without an answer).
- ``test_kinds()``: the shipped kinds plus ``SLEEP``.
- ``fast_settings(settings)``: the same settings with a 1.5 s lease, 0.3 s heartbeats and 0.1 s
  polls, so takeovers and cancels happen in test time.
- ``start_worker_process(settings)``: a worker running ``test_kinds()`` in its own process
  (``run_worker_process``), stopped by SIGTERM or killed by the test.
- ``wait_for(predicate, timeout)``, ``job_row(engine, id)``, ``markers(path)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from visionloop.config import Settings
from visionloop.jobs.kinds import JobContext, JobKind, JobKinds, default_kinds

if TYPE_CHECKING:  # the job's subprocess imports this module: keep it light
    from sqlalchemy import Engine

    from visionloop.server.models import Job

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
T = TypeVar("T")


class SleepParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = 0.0
    steps: int = 1
    marker: str | None = None
    fail: str | None = None
    crash: bool = False


def run_sleep(params: SleepParams, ctx: JobContext) -> dict[str, Any]:
    if params.marker:
        with open(params.marker, "a") as f:
            f.write(f"start {ctx.job_id} {ctx.attempt} {os.getpid()}\n")
    for step in range(1, params.steps + 1):
        time.sleep(params.seconds / params.steps)
        print(f"step {step} of {params.steps}")  # noqa: T201  # stdout is the job log
        ctx.progress(step / params.steps, f"step {step}")
    if params.fail:
        raise RuntimeError(params.fail)
    if params.crash:
        os._exit(3)
    if params.marker:
        with open(params.marker, "a") as f:
            f.write(f"done {ctx.job_id}\n")
    return {"slept": params.seconds, "attempt": ctx.attempt}


SLEEP = JobKind(name="sleep", params=SleepParams, run=run_sleep, description="Sleep (tests).")


def test_kinds() -> JobKinds:
    kinds = default_kinds()
    kinds.add(SLEEP)
    return kinds


test_kinds.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def fast_settings(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "job_lease_seconds": 1.5,
            "job_heartbeat_seconds": 0.3,
            "job_poll_seconds": 0.1,
            **overrides,
        }
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a process needs to see ``settings`` (and import this module)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_")}
    env |= {
        "VISIONLOOP_DATA_DIR": str(settings.data_dir),
        "VISIONLOOP_DATABASE_URL": settings.database_url,
        "VISIONLOOP_JOB_LEASE_SECONDS": str(settings.job_lease_seconds),
        "VISIONLOOP_JOB_HEARTBEAT_SECONDS": str(settings.job_heartbeat_seconds),
        "VISIONLOOP_JOB_POLL_SECONDS": str(settings.job_poll_seconds),
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")]),
    }
    return env


def start_worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    code = "from support.jobs import run_worker_process; run_worker_process()"
    return subprocess.Popen([sys.executable, "-c", code], env=settings_env(settings))


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def job_row(engine: Engine, job_id: int) -> Job:
    """The job as stored now (its whole log loaded too)."""
    from sqlalchemy.orm import Session

    from visionloop.server.models import Job

    with Session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        _ = job.log
        session.expunge(job)
        return job


def markers(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def run_worker_process() -> None:
    """A worker over the environment's settings, running ``test_kinds()``; SIGTERM stops it."""
    import signal

    from visionloop.jobs.worker import Worker
    from visionloop.server.db import create_db_engine

    settings = Settings()
    engine = create_db_engine(settings.database_url, pool_size=2)
    worker = Worker(engine=engine, settings=settings, kinds=test_kinds())
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    worker.run()
    engine.dispose()
