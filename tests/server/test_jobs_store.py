"""The jobs table's SQL: concurrent claims never share a job, and a claim that was taken over
can no longer write (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from visionloop.config import Settings
from visionloop.server.db import create_db_engine, write_engine
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import ClaimedJob, JobStatus


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_db_engine(settings.database_url)
    yield sessionmaker(write_engine(engine), expire_on_commit=False)
    engine.dispose()


def _enqueue(sessions: sessionmaker[Session], n: int, max_attempts: int = 3) -> list[int]:
    with sessions() as session, session.begin():
        return [
            job_store.enqueue(
                session, kind="k", params={"i": i}, created_by="test", max_attempts=max_attempts
            ).id
            for i in range(n)
        ]


def _claim(sessions: sessionmaker[Session], worker: str, lease: float = 60) -> ClaimedJob | None:
    with sessions() as session, session.begin():
        return job_store.claim(session, worker_id=worker, kinds=["k"], lease_seconds=lease)


def test_concurrent_claims_never_share_a_job(sessions: sessionmaker[Session]) -> None:
    ids = _enqueue(sessions, 40)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(worker: str) -> None:
        while (job := _claim(sessions, worker)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(claimed) == Counter(ids)


def test_a_claim_taken_over_can_no_longer_write(sessions: sessionmaker[Session]) -> None:
    (job_id,) = _enqueue(sessions, 1)
    first = _claim(sessions, "a", lease=0.3)
    assert first is not None and first.attempt == 1
    assert _claim(sessions, "b", lease=0.3) is None  # a's lease holds
    time.sleep(0.4)
    second = _claim(sessions, "b", lease=0.3)
    assert second is not None and second.id == job_id and second.attempt == 2
    with sessions() as session, session.begin():
        late = job_store.heartbeat(session, claimed=first, progress=0.5, message="still here?")
        assert late.owned is False
        assert not job_store.finish(session, claimed=first, status=JobStatus.SUCCEEDED, message="")
        assert job_store.heartbeat(session, claimed=second, progress=0.5, message="mine").owned
        assert job_store.finish(
            session, claimed=second, status=JobStatus.SUCCEEDED, message="done", result={"x": 1}
        )
    with sessions() as session:
        job = job_store.get_job(session, job_id=job_id)
        assert (job.status, job.worker_id, job.result, job.progress) == (
            "succeeded",
            "b",
            {"x": 1},
            1.0,
        )


def test_heartbeats_append_the_log_and_keep_the_tail(sessions: sessionmaker[Session]) -> None:
    (job_id,) = _enqueue(sessions, 1)
    claimed = _claim(sessions, "a")
    assert claimed is not None
    with sessions() as session, session.begin():
        job_store.heartbeat(
            session, claimed=claimed, progress=2.0, message="x", log_chunk="one\n", log_tail="one"
        )
        job_store.heartbeat(
            session,
            claimed=claimed,
            progress=0.5,
            message="m" * 600,
            log_chunk="two\n",
            log_tail="one\ntwo",
        )
    with sessions() as session:
        assert job_store.job_log(session, job_id=job_id) == "one\ntwo\n"
        job = job_store.get_job(session, job_id=job_id)
        assert job.log_tail == "one\ntwo" and job.progress == 0.5 and len(job.message) == 500
