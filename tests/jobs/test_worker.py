"""The worker end to end: jobs run in subprocesses, fail, crash, are cancelled, released, taken
over from a SIGKILLed worker, and never run twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from support.jobs import (
    fast_settings,
    job_row,
    markers,
    start_worker_process,
    test_kinds,
    wait_for,
)
from visionloop.config import Settings
from visionloop.jobs.kinds import lanes
from visionloop.jobs.worker import Worker, run_lanes
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import JobStatus


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return fast_settings(settings)


@pytest.fixture
def engine(fast: Settings) -> Iterator[Engine]:
    engine = create_db_engine(fast.database_url)
    yield engine
    engine.dispose()


def _enqueue(engine: Engine, kind: str = "sleep", max_attempts: int = 3, **params: Any) -> int:
    with Session(write_engine(engine)) as session, session.begin():
        return job_store.enqueue(
            session, kind=kind, params=params, created_by="test", max_attempts=max_attempts
        ).id


def _worker(engine: Engine, settings: Settings, **kwargs: Any) -> Worker:
    return Worker(engine=engine, settings=settings, kinds=test_kinds(), **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_job_runs_in_a_subprocess_and_succeeds(engine: Engine, fast: Settings) -> None:
    job_id = _enqueue(engine, seconds=0.3, steps=3)
    seen: list[tuple[int, float, str]] = []
    worker = _worker(engine, fast, on_progress=lambda *a: seen.append(a))
    assert worker.run(once=True) == 1
    job = job_row(engine, job_id)
    assert job.status == "succeeded", job.log
    assert job.progress == 1.0 and job.message == "done"
    assert job.result == {"slept": 0.3, "attempt": 1}
    assert job.attempts == 1 and job.worker_id == worker.worker_id
    assert job.started_at is not None and job.finished_at is not None
    assert "step 3 of 3" in job.log and "step 3 of 3" in job.log_tail
    assert job.log.startswith("[visionloop] attempt 1 of 3 on worker ")
    assert [s[1] for s in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert worker.run(once=True) == 0  # nothing left


def test_a_job_that_raises_fails_with_its_error_and_is_not_retried(
    engine: Engine, fast: Settings
) -> None:
    job_id = _enqueue(engine, fail="boom")
    assert _worker(engine, fast).run_one() == JobStatus.FAILED
    job = job_row(engine, job_id)
    assert job.status == "failed" and job.error == "RuntimeError: boom"
    assert job.attempts == 1 and job.result is None
    assert "Traceback" in job.log


def test_a_crashed_job_is_retried_then_failed_with_the_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = fast_settings(Settings(data_dir=tmp_path, database_url=sqlite_url))
    engine = create_db_engine(sqlite_url)
    try:
        job_id = _enqueue(engine, crash=True, max_attempts=2)
        worker = _worker(engine, settings)
        assert worker.run_one() == JobStatus.QUEUED
        assert job_row(engine, job_id).status == "queued"
        assert worker.run_one() == JobStatus.FAILED
        job = job_row(engine, job_id)
        assert job.error == (
            "the job's process died without an answer (exit code 3) in attempt 2 of 2"
        )
    finally:
        engine.dispose()


def _claim_as_ghost(engine: Engine, lease: float) -> None:
    """A worker that claims a job and then dies without a word."""
    with Session(write_engine(engine)) as session, session.begin():
        claimed = job_store.claim(session, worker_id="ghost", kinds=["sleep"], lease_seconds=lease)
    assert claimed is not None


def test_a_dead_workers_job_fails_when_no_attempt_is_left(engine: Engine, fast: Settings) -> None:
    job_id = _enqueue(engine, max_attempts=1)
    _claim_as_ghost(engine, fast.job_lease_seconds)
    worker = _worker(engine, fast)
    assert worker.run_one() is None  # still within the ghost's lease
    assert job_row(engine, job_id).status == "running"
    time.sleep(fast.job_lease_seconds + 0.1)
    assert worker.run_one() is None  # reaped, not run
    job = job_row(engine, job_id)
    assert job.status == "failed"
    assert job.error == (
        "worker ghost stopped heartbeating for over 1.5 s during attempt 1 of 1; no attempts left"
    )


def test_a_dead_workers_job_is_taken_over(engine: Engine, fast: Settings) -> None:
    job_id = _enqueue(engine, max_attempts=2)
    _claim_as_ghost(engine, fast.job_lease_seconds)
    time.sleep(fast.job_lease_seconds + 0.1)
    assert _worker(engine, fast).run_one() == JobStatus.SUCCEEDED
    job = job_row(engine, job_id)
    assert job.attempts == 2 and job.result == {"slept": 0.0, "attempt": 2}


def test_a_cancelled_queued_job_never_starts(engine: Engine, fast: Settings) -> None:
    job_id = _enqueue(engine)
    with Session(write_engine(engine)) as session, session.begin():
        assert job_store.request_cancel(session, job_id=job_id).status == "cancelled"
    assert _worker(engine, fast).run_one() is None
    job = job_row(engine, job_id)
    assert job.status == "cancelled" and job.attempts == 0 and job.started_at is None


def _run_in_thread(worker: Worker, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=worker.run, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def _started_pid(marker: Path) -> int:
    starts = [m for m in markers(marker) if m[0] == "start"]
    return int(starts[-1][3]) if starts else 0


def test_a_running_job_is_cancelled_within_10_s(
    engine: Engine, fast: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    job_id = _enqueue(engine, seconds=60, steps=600, marker=str(marker))
    worker = _worker(engine, fast)
    thread = _run_in_thread(worker, once=True)
    pid = wait_for(lambda: _started_pid(marker), 30, "the job to start")
    wait_for(lambda: job_row(engine, job_id).progress > 0, 10, "progress")
    asked = time.monotonic()
    with Session(write_engine(engine)) as session, session.begin():
        assert job_store.request_cancel(session, job_id=job_id).status == "running"
    wait_for(lambda: job_row(engine, job_id).status == "cancelled", 10, "cancelled")
    assert time.monotonic() - asked < 10
    thread.join(timeout=10)
    assert not _alive(pid)
    job = job_row(engine, job_id)
    assert job.finished_at is not None and "stopping the job's process (cancel)" in job.log
    assert ["done", str(job_id)] not in markers(marker)


def test_a_stopping_worker_releases_its_job(sqlite_url: str, tmp_path: Path) -> None:
    settings = fast_settings(Settings(data_dir=tmp_path, database_url=sqlite_url))
    engine = create_db_engine(sqlite_url)
    try:
        marker = tmp_path / "marker"
        job_id = _enqueue(engine, seconds=60, steps=600, marker=str(marker))
        worker = _worker(engine, settings)
        thread = _run_in_thread(worker)
        pid = wait_for(lambda: _started_pid(marker), 30, "the job to start")
        worker.stop()
        thread.join(timeout=10)
        assert not thread.is_alive() and not _alive(pid)
        job = job_row(engine, job_id)
        assert job.status == "queued" and job.attempts == 0 and job.worker_id is None
        assert "queued again" in job.message
    finally:
        engine.dispose()


def test_a_drift_check_runs_beside_a_long_job_in_its_own_lane(
    engine: Engine, fast: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drift check's process reads its settings (the database) from the environment.
    monkeypatch.setenv("VISIONLOOP_DATABASE_URL", fast.database_url)
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(fast.data_dir))
    split = lanes(test_kinds())
    assert [set(lane) for lane in split] == [
        {"drift_check", "alert_webhook"},
        set(test_kinds()) - {"drift_check", "alert_webhook"},
    ]
    marker = tmp_path / "marker"
    long_job = _enqueue(engine, seconds=60, steps=600, marker=str(marker))
    workers = [Worker(engine=engine, settings=fast, kinds=lane) for lane in split]
    thread = threading.Thread(target=run_lanes, args=(workers,), daemon=True)
    thread.start()
    try:
        pid = wait_for(lambda: _started_pid(marker), 30, "the long job to start")
        check = _enqueue(engine, kind="drift_check", device_ids=[999])
        wait_for(
            lambda: job_row(engine, check).status not in ("queued", "running"),
            60,
            "the drift check",
        )
        row = job_row(engine, check)
        done = row.status == "succeeded"
        assert done, (row.status, row.error, row.log)
        assert done and job_row(engine, long_job).status == "running" and _alive(pid)
        assert job_row(engine, check).worker_id == workers[0].worker_id
    finally:
        for worker in workers:
            worker.stop()
        thread.join(timeout=15)
    assert not thread.is_alive() and not _alive(pid)
    assert job_row(engine, long_job).status == "queued"  # released by the stop, not lost


def test_a_sigkilled_workers_job_is_taken_over_once(
    engine: Engine, fast: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    job_id = _enqueue(engine, seconds=2, steps=20, marker=str(marker))
    first = start_worker_process(fast)
    try:
        pid = wait_for(lambda: _started_pid(marker), 30, "the job to start")
        wait_for(lambda: job_row(engine, job_id).progress > 0, 10, "progress")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # The orphaned job process notices its worker died and stops: it never finishes this try.
    wait_for(lambda: not _alive(pid), 5, "the orphaned job process to stop")
    assert job_row(engine, job_id).status == "running"

    second = _worker(engine, fast)
    wait_for(lambda: second.run_one() is not None, 10, "the takeover")
    job = job_row(engine, job_id)
    assert job.status == "succeeded" and job.attempts == 2
    assert job.worker_id == second.worker_id
    runs = markers(marker)
    assert [m[:3] for m in runs if m[0] == "start"] == [
        ["start", str(job_id), "1"],
        ["start", str(job_id), "2"],
    ]
    assert [m for m in runs if m[0] == "done"] == [["done", str(job_id)]]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_worker_processes_run_each_of_20_jobs_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    fast = fast_settings(settings)
    engine = create_db_engine(fast.database_url)
    marker = tmp_path / "marker"
    workers = []
    try:
        ids = [_enqueue(engine, marker=str(marker)) for _ in range(20)]
        workers = [start_worker_process(fast) for _ in range(2)]

        def all_done() -> bool:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'succeeded'"))
                return done.scalar_one() == len(ids)

        wait_for(all_done, 120, "20 jobs to succeed")
        done = sorted(int(m[1]) for m in markers(marker) if m[0] == "done")
        assert done == sorted(ids)
        assert all(job_row(engine, i).attempts == 1 for i in ids)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=15)
        engine.dispose()
