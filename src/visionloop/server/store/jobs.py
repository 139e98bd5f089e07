"""The jobs table: queue, claim, heartbeat, finish and cancel jobs, and take the scheduler's ticks.

Every statement that moves a job is one UPDATE guarded by the state it expects, so several
workers (on several machines) and server processes can share the table with no other lock:

- A claim picks the oldest claimable job with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (workers
  never wait on each other and never get the same row); on SQLite the caller's ``BEGIN
  IMMEDIATE`` transaction serialises claims. Claimable: ``queued``, or ``running`` with no
  heartbeat for ``lease_seconds`` (its worker died: a takeover, which counts an attempt).
- A claim is named by ``(worker_id, attempts)``: heartbeats and the outcome are written only
  while the row still carries both, so a worker that lost its job (taken over after a long
  pause) learns it at its next heartbeat and cannot overwrite the new owner's work.
- Times come from the database's clock on PostgreSQL (workers on several machines agree on one
  clock), from this machine's on SQLite (a single machine).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop.errors import ConflictError, InvalidInputError, NotFoundError
from visionloop.server.models import Job, JobSchedule, table

jobs_table = table(Job)
LOG_MAX_CHARS = 4 * 1024 * 1024
"""The stored log keeps a job's first ~4 Mi characters; ``log_tail`` always has the last lines."""
MESSAGE_MAX_CHARS = 500


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker now holds: run it, heartbeat as ``(worker_id, attempt)``."""

    id: int
    kind: str
    params: dict[str, Any]
    attempt: int
    max_attempts: int
    worker_id: str
    log_tail: str


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def _rowcount(session: Session, stmt: Any) -> int:
    """Rows an UPDATE or INSERT changed."""
    result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]  # DML
    return int(result.rowcount)


def db_now(session: Session) -> datetime:
    """The time every job timestamp is taken from (see the module doc)."""
    if session.get_bind().dialect.name == "postgresql":
        now: datetime = session.execute(select(func.now())).scalar_one()
        return now.astimezone(UTC)
    return datetime.now(UTC)


# --- people and the scheduler ----------------------------------------------------------------


def enqueue(
    session: Session,
    *,
    kind: str,
    params: dict[str, Any],
    created_by: str,
    max_attempts: int,
) -> Job:
    """Queue a job. ``params`` must already be valid for ``kind`` (see ``visionloop.jobs``).

    A kind the database keeps to one active job (``train``: a partial unique index) raises
    ConflictError with ``job_id``, the queued or running one, when there is one already."""
    job = Job(
        kind=kind,
        params=params,
        status=JobStatus.QUEUED.value,
        progress=0.0,
        message="",
        log_tail="",
        log="",
        created_by=created_by,
        created_at=db_now(session),
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        active = active_job(session, kind=kind)
        if active is None:
            raise
        raise ConflictError(
            f"a {kind} job is already {active.status}: job {active.id}", job_id=active.id
        ) from None
    return job


def active_job(session: Session, *, kind: str) -> Job | None:
    """The oldest queued or running job of ``kind``, or None."""
    return session.scalars(
        select(Job)
        .where(Job.kind == kind, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
        .order_by(Job.id)
        .limit(1)
    ).first()


def latest_job(session: Session, *, kind: str, status: JobStatus | None = None) -> Job | None:
    """The newest job of ``kind`` (in ``status``, when given), or None."""
    stmt = select(Job).where(Job.kind == kind)
    if status is not None:
        stmt = stmt.where(Job.status == status.value)
    return session.scalars(stmt.order_by(Job.id.desc()).limit(1)).first()


def get_job(session: Session, *, job_id: int) -> Job:
    """A job (without its whole log), or NotFoundError."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job


def job_log(session: Session, *, job_id: int) -> str:
    """A job's whole stored log."""
    log = session.execute(select(Job.log).where(Job.id == job_id)).scalar_one_or_none()
    if log is None:
        raise NotFoundError(f"no job {job_id}")
    return log


def decode_cursor(cursor: str) -> int:
    try:
        value = int(cursor)
    except ValueError:
        value = -1
    if value < 0:
        raise InvalidInputError("invalid cursor: pass back a next_cursor from this API")
    return value


def list_jobs(
    session: Session,
    *,
    kind: str | None = None,
    status: JobStatus | None = None,
    limit: int,
    cursor: str | None = None,
) -> JobPage:
    """One page of jobs, newest first; follow ``next_cursor`` for the next."""
    conditions: list[ColumnElement[bool]] = []
    if kind is not None:
        conditions.append(Job.kind == kind)
    if status is not None:
        conditions.append(Job.status == status.value)
    if cursor is not None:
        conditions.append(Job.id < decode_cursor(cursor))
    stmt = select(Job).where(*conditions).order_by(Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(stmt))
    next_cursor = str(jobs[limit - 1].id) if len(jobs) > limit else None
    return JobPage(jobs=jobs[:limit], next_cursor=next_cursor)


def request_cancel(session: Session, *, job_id: int) -> Job:
    """Cancel a job: a queued one is ``cancelled`` at once and never starts; a running one is
    flagged, and its worker stops it at its next heartbeat. A finished job is a ConflictError."""
    now = db_now(session)
    cancelled_now = _rowcount(
        session,
        update(jobs_table)
        .where(jobs_table.c.id == job_id, jobs_table.c.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.CANCELLED.value,
            cancel_requested=True,
            finished_at=now,
            message="cancelled before it started",
        ),
    )
    if cancelled_now == 0:
        session.execute(
            update(jobs_table)
            .where(jobs_table.c.id == job_id, jobs_table.c.status == JobStatus.RUNNING.value)
            .values(cancel_requested=True)
        )
    job = get_job(session, job_id=job_id)
    session.refresh(job)
    if job.status in (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value) or (
        job.status == JobStatus.CANCELLED.value and cancelled_now == 0
    ):
        raise ConflictError(f"job {job_id} already {job.status}")
    return job


# --- workers ---------------------------------------------------------------------------------


def _stale(lease_seconds: float, now: datetime) -> ColumnElement[bool]:
    return and_(
        jobs_table.c.status == JobStatus.RUNNING.value,
        jobs_table.c.heartbeat_at < now - timedelta(seconds=lease_seconds),
    )


def _reap(session: Session, *, lease_seconds: float, now: datetime) -> None:
    """End the stale jobs no one may take over: cancel requested, or no attempts left."""
    c = jobs_table.c

    def stale_ids(*extra: ColumnElement[bool]) -> Any:
        return (
            select(c.id)
            .where(_stale(lease_seconds, now), *extra)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )

    session.execute(
        update(jobs_table)
        .where(c.id.in_(stale_ids(c.cancel_requested.is_(True))))
        .values(
            status=JobStatus.CANCELLED.value,
            finished_at=now,
            message="cancelled (its worker stopped heartbeating)",
        )
    )
    session.execute(
        update(jobs_table)
        .where(c.id.in_(stale_ids(c.attempts >= c.max_attempts)))
        .values(
            status=JobStatus.FAILED.value,
            finished_at=now,
            error=literal("worker ")
            + func.coalesce(c.worker_id, "?")
            + literal(f" stopped heartbeating for over {lease_seconds:g} s during attempt ")
            + cast(c.attempts, String)
            + literal(" of ")
            + cast(c.max_attempts, String)
            + literal("; no attempts left"),
        )
    )


def anything_to_claim(session: Session, *, kinds: list[str], lease_seconds: float) -> bool:
    """Whether a claim could find work (a queued job of ``kinds``, or a stale running job of
    any kind). A plain read: an idle worker's polls take no write lock (SQLite's is the whole
    database)."""
    c = jobs_table.c
    now = db_now(session)
    stmt = select(c.id).where(
        or_(
            and_(c.status == JobStatus.QUEUED.value, c.kind.in_(kinds)),
            _stale(lease_seconds, now),
        )
    )
    return session.execute(stmt.limit(1)).first() is not None


def claim(
    session: Session, *, worker_id: str, kinds: list[str], lease_seconds: float
) -> ClaimedJob | None:
    """Take the oldest claimable job of ``kinds`` for ``worker_id`` (see the module doc), or None.

    Ends stale jobs that cannot be taken over first. Call it in a write transaction (``BEGIN
    IMMEDIATE`` on SQLite) and commit at once.
    """
    now = db_now(session)
    _reap(session, lease_seconds=lease_seconds, now=now)
    c = jobs_table.c
    pick = (
        select(c.id)
        .where(
            c.kind.in_(kinds),
            or_(c.status == JobStatus.QUEUED.value, _stale(lease_seconds, now)),
        )
        .order_by(c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = session.execute(
        update(jobs_table)
        .where(c.id == pick)
        .values(
            status=JobStatus.RUNNING.value,
            attempts=c.attempts + 1,
            worker_id=worker_id,
            heartbeat_at=now,
            started_at=now,
            finished_at=None,
            message="starting",
        )
        .returning(c.id, c.kind, c.params, c.attempts, c.max_attempts, c.log_tail)
    ).first()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        params=dict(row.params),
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        worker_id=worker_id,
        log_tail=row.log_tail,
    )


def _owned(claimed: ClaimedJob) -> ColumnElement[bool]:
    c = jobs_table.c
    return and_(
        c.id == claimed.id,
        c.worker_id == claimed.worker_id,
        c.attempts == claimed.attempt,
        c.status == JobStatus.RUNNING.value,
    )


def _log_values(log_chunk: str, log_tail: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if log_chunk:
        log = jobs_table.c.log
        values["log"] = case((func.length(log) < LOG_MAX_CHARS, log + log_chunk), else_=log)
    if log_tail is not None:
        values["log_tail"] = log_tail
    return values


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    owned: bool
    """False when the job is no longer this claim's (taken over, or ended by someone else)."""
    cancel_requested: bool


def heartbeat(
    session: Session,
    *,
    claimed: ClaimedJob,
    progress: float,
    message: str,
    log_chunk: str = "",
    log_tail: str | None = None,
) -> HeartbeatAnswer:
    """Record that ``claimed`` is alive, with its progress (0..1), message and new log lines."""
    row = session.execute(
        update(jobs_table)
        .where(_owned(claimed))
        .values(
            heartbeat_at=db_now(session),
            progress=min(max(progress, 0.0), 1.0),
            message=message[:MESSAGE_MAX_CHARS],
            **_log_values(log_chunk, log_tail),
        )
        .returning(jobs_table.c.cancel_requested)
    ).first()
    if row is None:
        return HeartbeatAnswer(owned=False, cancel_requested=False)
    return HeartbeatAnswer(owned=True, cancel_requested=bool(row.cancel_requested))


def finish(
    session: Session,
    *,
    claimed: ClaimedJob,
    status: JobStatus,
    message: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    log_chunk: str = "",
    log_tail: str | None = None,
) -> bool:
    """End ``claimed`` as ``status`` (a finished one, or ``queued`` to run it again later). False
    when the claim was no longer this worker's (nothing written)."""
    now = db_now(session)
    values: dict[str, Any] = {
        "status": status.value,
        "message": message[:MESSAGE_MAX_CHARS],
        "error": error,
        **_log_values(log_chunk, log_tail),
    }
    if status == JobStatus.SUCCEEDED:
        values |= {"progress": 1.0, "result": result}
    if status.finished:
        values |= {"finished_at": now, "heartbeat_at": now}
    else:
        values |= {"worker_id": None, "heartbeat_at": None}
    return _rowcount(session, update(jobs_table).where(_owned(claimed)).values(**values)) == 1


def release(session: Session, *, claimed: ClaimedJob, log_chunk: str, log_tail: str) -> bool:
    """Give a job back because its worker is stopping (not the job's fault): queued again with
    the attempt not counted, or cancelled if a cancel was requested meanwhile."""
    c = jobs_table.c
    cancelled = c.cancel_requested.is_(True)
    done = _rowcount(
        session,
        update(jobs_table)
        .where(_owned(claimed))
        .values(
            status=case((cancelled, JobStatus.CANCELLED.value), else_=JobStatus.QUEUED.value),
            finished_at=case((cancelled, db_now(session)), else_=None),
            attempts=c.attempts - 1,
            worker_id=None,
            heartbeat_at=None,
            message=case(
                (cancelled, "cancelled"), else_="queued again: its worker stopped (not counted)"
            ),
            **_log_values(log_chunk, log_tail),
        ),
    )
    return done == 1


# --- the scheduler ---------------------------------------------------------------------------


def take_tick(session: Session, *, name: str, period_seconds: float) -> bool:
    """True when periodic task ``name`` is due (never ran, or last ran ``period_seconds`` ago)
    and this caller now owns this period's run; every other caller gets False until the next."""
    now = db_now(session)
    c = table(JobSchedule).c
    done = _rowcount(
        session,
        update(table(JobSchedule))
        .where(c.name == name, c.last_run_at <= now - timedelta(seconds=period_seconds))
        .values(last_run_at=now),
    )
    if done == 1:
        return True
    if session.execute(select(c.name).where(c.name == name)).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.execute(insert(table(JobSchedule)).values(name=name, last_run_at=now))
    except IntegrityError:
        return False  # another worker inserted it first
    return True
