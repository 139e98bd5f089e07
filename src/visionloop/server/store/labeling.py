"""The labeling queue: classes, review tasks (created, leased, released, skipped, submitted,
reopened) and the statistics of what reviews say about each model version.

A frame has at most one active task (status open or leased; a unique partial index holds this).
Leasing is one statement on both databases::

    UPDATE label_tasks SET status = 'leased', leased_by = :user, ...
    WHERE id = (SELECT id FROM label_tasks
                WHERE status IN ('open', 'leased')
                  AND (lease_expires_at IS NULL OR lease_expires_at < :now)
                ORDER BY priority DESC, id DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING ...

On PostgreSQL ``SKIP LOCKED`` lets concurrent reviewers walk past each other's rows; on SQLite
(which renders no ``FOR UPDATE``) the statement runs in the caller's ``BEGIN IMMEDIATE`` write
transaction, which holds the database's only write lock. A task whose lease expired is still
``leased`` in its row but matches the condition again, so it is open to the next caller without a
sweeper. The subquery walks the partial index ``ix_label_tasks_queue`` from its top and only skips
live leases (about one per active reviewer), so the lookup stays cheap with any queue length; the
audit share's variant reads ``ix_label_tasks_audit_queue``, which holds active audit tasks only.
The ``status IN ('open', 'leased')`` condition is written as literal SQL, identical to the partial
indexes' predicate: a bound parameter would keep the planners from using them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop.config import LabelingStrategy, Settings
from visionloop.errors import ConflictError, InvalidInputError, NotFoundError
from visionloop.server import labeling_strategy as strategies
from visionloop.server.models import (
    ACTIVE_TASK_WHERE,
    Detection,
    DriftAlarm,
    Frame,
    LabelClass,
    LabelQueueCounter,
    LabelSubmission,
    LabelTask,
    UTCDateTime,
    table,
)
from visionloop.server.review import Label, Prediction, match, wilson_interval
from visionloop.vision.dhash import hamming, image_dhash, to_signed64

TASKS = table(LabelTask)
SUBMISSIONS = table(LabelSubmission)
CLASSES = table(LabelClass)
COUNTERS = table(LabelQueueCounter)
ACTIVE = text(ACTIVE_TASK_WHERE)


def _now() -> datetime:
    return datetime.now(UTC)


# --- classes -------------------------------------------------------------------------------------


_LIST_CLASSES = select(CLASSES.c.id, CLASSES.c.name).order_by(CLASSES.c.id)
_ANY_CLASS = select(CLASSES.c.id).limit(1)


def list_classes(session: Session) -> list[tuple[int, str]]:
    """Every class as ``(id, name)``, by id."""
    return [(r.id, r.name) for r in session.connection().execute(_LIST_CLASSES)]


def has_classes(session: Session) -> bool:
    """True once any class exists."""
    return session.connection().execute(_ANY_CLASS).first() is not None


def seed_classes(session: Session, *, names: Sequence[str], source: str = "model") -> int:
    """Give an empty class list ``names`` (the production model's, in class-id order); returns
    how many were added. Does nothing once any class exists; safe when two servers race."""
    if not names or has_classes(session):
        return 0
    now = _now()
    rows = [{"id": i, "name": n, "source": source, "created_at": now} for i, n in enumerate(names)]
    stmt = (
        _dialect_insert(session, CLASSES)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(CLASSES.c.id)
    )
    return len(session.execute(stmt).all())


def add_class(session: Session, *, name: str, source: str = "admin") -> tuple[int, str]:
    """Add a class with the next free id; ConflictError when the name exists."""
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInputError("a class name must be 1 to 64 characters")
    if session.scalar(select(CLASSES.c.id).where(CLASSES.c.name == name)) is not None:
        raise ConflictError(f"a class named {name!r} already exists")
    next_id = int(session.scalar(select(func.coalesce(func.max(CLASSES.c.id), -1))) or 0) + 1
    try:
        with session.begin_nested():
            session.execute(
                insert(CLASSES).values(id=next_id, name=name, source=source, created_at=_now())
            )
    except IntegrityError as exc:  # another server added one at the same time
        raise ConflictError(f"class {name!r} could not be added now; try again") from exc
    return next_id, name


# --- creating tasks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """A task as the API lists it."""

    id: int
    frame_id: uuid.UUID
    reason: str
    status: str
    priority: float
    note: str | None
    created_at: datetime
    lease_expires_at: datetime | None


def _dialect_insert(session: Session, target: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


def _insert_task(session: Session, values: dict[str, Any]) -> int | None:
    """Insert a task unless its frame already has an active one; the new id, or None."""
    stmt = (
        _dialect_insert(session, TASKS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["frame_pk"], index_where=ACTIVE)
        .returning(TASKS.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    return None if new_id is None else int(new_id)


@dataclass(frozen=True, slots=True)
class QueueHygiene:
    """What keeps the queue useful (``VISIONLOOP_LABELING_*``; the defaults here: all off).

    - ``duplicate_bits``: a sampled frame whose image's dHash is at most this many bits from an
      open or leased task of the same device, or one done in the last ``duplicate_window_s``
      seconds, is not queued; the device's ``label_queue_counters.duplicates`` counts it. -1: off.
    - ``max_open_per_device``: past this many open automatic tasks of a device, its
      lowest-priority ones (the oldest first among equals) expire: status ``expired``, kept with
      their frames, counted. 0: no cap.
    - the age term: every task's priority is its strategy's plus the queue's *age clock* when it
      was made, a number that grows by 1 every ``age_hours`` hours (every ``drift_age_hours``
      while any drift alarm is open). The order of two tasks then depends on their priorities and
      on how far apart they were made, never on when the queue is read, so ``/next`` stays one
      index lookup: a frame ``age_hours`` newer outranks an equally uncertain one by the whole
      uncertainty range. The clock is read from the newest task (``age_bonus``) and advanced by
      the time since it was made. 0: off.
    """

    duplicate_bits: int = -1
    duplicate_window_s: float = 3600.0
    max_open_per_device: int = 0
    age_hours: float = 0.0
    drift_age_hours: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueHygiene:
        return cls(
            duplicate_bits=settings.labeling_duplicate_bits,
            duplicate_window_s=settings.labeling_duplicate_window_s,
            max_open_per_device=settings.labeling_max_open_per_device,
            age_hours=settings.labeling_age_hours,
            drift_age_hours=settings.labeling_drift_age_hours,
        )


_NO_HYGIENE = QueueHygiene()


def _any_drift_alarm(session: Session) -> bool:
    return (
        session.scalar(select(DriftAlarm.device_id).where(DriftAlarm.is_open).limit(1)) is not None
    )


def age_clock(session: Session, *, now: datetime, hygiene: QueueHygiene) -> float:
    """The queue's age clock at ``now`` (see ``QueueHygiene``): the newest task's, advanced by
    the hours since it was made over ``age_hours`` (``drift_age_hours`` while a drift alarm is
    open); 0 for the first task."""
    last = session.execute(
        select(TASKS.c.created_at, TASKS.c.age_bonus).order_by(TASKS.c.id.desc()).limit(1)
    ).first()
    if last is None:
        return 0.0
    clock = float(last.age_bonus or 0.0)
    hours = hygiene.age_hours
    if hours > 0 and hygiene.drift_age_hours > 0 and _any_drift_alarm(session):
        hours = hygiene.drift_age_hours
    if hours <= 0:
        return clock
    created = last.created_at if last.created_at.tzinfo else last.created_at.replace(tzinfo=UTC)
    return clock + max(0.0, float((now - created).total_seconds())) / (hours * 3600.0)


def _near_duplicate(
    session: Session, *, device_id: int, dhash: int, now: datetime, hygiene: QueueHygiene
) -> bool:
    """Whether an active task of the device, or one done within the window, has an image within
    ``duplicate_bits`` of ``dhash``."""
    near = [
        TASKS.c.device_id == device_id,
        TASKS.c.dhash.is_not(None),
    ]
    active = session.scalars(select(TASKS.c.dhash).where(*near, ACTIVE))
    window = now - timedelta(seconds=hygiene.duplicate_window_s)
    done = session.scalars(
        select(TASKS.c.dhash).where(*near, TASKS.c.status == "done", TASKS.c.done_at >= window)
    )
    bits = hygiene.duplicate_bits
    return any(h is not None and hamming(dhash, h) <= bits for rows in (active, done) for h in rows)


def _count_duplicate(session: Session, *, device_id: int, now: datetime) -> None:
    stmt = _dialect_insert(session, COUNTERS).values(
        device_id=device_id, duplicates=1, last_duplicate_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[COUNTERS.c.device_id],
            set_={"duplicates": COUNTERS.c.duplicates + 1, "last_duplicate_at": now},
        )
    )


def _expire_over_cap(session: Session, *, device_id: int, cap: int, now: datetime) -> int:
    """Expire the device's lowest-priority open automatic tasks beyond ``cap``; how many."""
    mine = and_(
        TASKS.c.device_id == device_id,
        ACTIVE,
        TASKS.c.status == "open",
        TASKS.c.reason != "manual",
    )
    n_open = int(session.scalar(select(func.count()).select_from(TASKS).where(mine)) or 0)
    excess = n_open - cap
    if excess <= 0:
        return 0
    victims = (
        select(TASKS.c.id)
        .where(mine)
        .order_by(TASKS.c.priority.asc(), TASKS.c.id.asc())
        .limit(excess)
        .scalar_subquery()
    )
    result = session.execute(
        update(TASKS)
        .where(TASKS.c.id.in_(victims), TASKS.c.status == "open")
        .values(status="expired", expired_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


def queue_sampled_frame(
    session: Session,
    *,
    frame_id: uuid.UUID,
    image: bytes,
    strategy: LabelingStrategy,
    rng: random.Random | None = None,
    hygiene: QueueHygiene = _NO_HYGIENE,
) -> int | None:
    """Create the review task of a sampled frame whose image just arrived; returns its id.

    Only frames with a ``sample_reason`` get one, and only once: a frame that ever had a task
    (an image uploaded again, a frame already reviewed) gets none; nor does a near-duplicate of
    the device's recent tasks (counted instead; ``hygiene``). The priority follows ``strategy``
    (see ``visionloop.server.labeling_strategy``) plus the age clock; past the device's cap its
    lowest-priority open tasks expire."""
    frame = session.execute(
        select(Frame.pk, Frame.device_id, Frame.sample_reason).where(Frame.id == frame_id)
    ).one_or_none()
    if frame is None or frame.sample_reason is None:
        return None
    if session.scalar(select(TASKS.c.id).where(TASKS.c.frame_pk == frame.pk).limit(1)):
        return None
    detections = session.execute(
        select(Detection.class_name, Detection.confidence).where(Detection.frame_pk == frame.pk)
    ).all()
    uncertainty, top_class = strategies.frame_uncertainty([(d[0], d[1]) for d in detections])
    raw_hash = image_dhash(image)
    dhash = None if raw_hash is None else to_signed64(raw_hash)
    now = _now()
    if (
        hygiene.duplicate_bits >= 0
        and dhash is not None
        and frame.device_id is not None
        and _near_duplicate(
            session, device_id=frame.device_id, dhash=dhash, now=now, hygiene=hygiene
        )
    ):
        _count_duplicate(session, device_id=frame.device_id, now=now)
        return None
    duplicate = balance = 0.0
    if strategy == "hybrid":
        recent_hashes = session.scalars(
            select(TASKS.c.dhash)
            .where(TASKS.c.device_id == frame.device_id, TASKS.c.dhash.is_not(None))
            .order_by(TASKS.c.id.desc())
            .limit(strategies.DUPLICATE_WINDOW)
        )
        duplicate = strategies.duplicate_penalty(dhash, (h for h in recent_hashes if h is not None))
        recent_classes = session.scalars(
            select(TASKS.c.top_class)
            .where(TASKS.c.top_class.is_not(None))
            .order_by(TASKS.c.id.desc())
            .limit(strategies.BALANCE_WINDOW)
        )
        balance = strategies.class_balance(top_class, (c for c in recent_classes if c))
    priority = strategies.automatic_priority(
        strategy, uncertainty=uncertainty, duplicate=duplicate, balance=balance, rng=rng
    )
    clock = age_clock(session, now=now, hygiene=hygiene)
    new_id = _insert_task(
        session,
        {
            "frame_pk": frame.pk,
            "reason": frame.sample_reason,
            "status": "open",
            "priority": priority + clock,
            "age_bonus": clock,
            "created_at": now,
            "device_id": frame.device_id,
            "dhash": dhash,
            "top_class": top_class,
        },
    )
    if new_id is not None and hygiene.max_open_per_device > 0 and frame.device_id is not None:
        _expire_over_cap(
            session, device_id=frame.device_id, cap=hygiene.max_open_per_device, now=now
        )
    return new_id


def _summary(session: Session, task_id: int) -> TaskSummary:
    row = session.execute(
        select(
            TASKS.c.id,
            Frame.id.label("frame_id"),
            TASKS.c.reason,
            TASKS.c.status,
            TASKS.c.priority,
            TASKS.c.note,
            TASKS.c.created_at,
            TASKS.c.lease_expires_at,
        )
        .join(Frame, Frame.pk == TASKS.c.frame_pk)
        .where(TASKS.c.id == task_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no labeling task {task_id}")
    return TaskSummary(**row._asdict())


def create_manual_task(
    session: Session,
    *,
    frame_id: uuid.UUID,
    note: str | None,
    user_id: int,
    hygiene: QueueHygiene = _NO_HYGIENE,
) -> tuple[TaskSummary, bool]:
    """Send a frame to review ahead of the automatic tasks; returns the task and whether it is
    new. A frame that already has an open or leased task gets that task back, unchanged."""
    frame = session.execute(
        select(Frame.pk, Frame.device_id, Frame.image_sha256).where(Frame.id == frame_id)
    ).one_or_none()
    if frame is None:
        raise NotFoundError(f"no frame {frame_id}")
    if frame.image_sha256 is None:
        raise InvalidInputError(f"frame {frame_id} has no image to review")
    now = _now()
    clock = age_clock(session, now=now, hygiene=hygiene)
    new_id = _insert_task(
        session,
        {
            "frame_pk": frame.pk,
            "reason": "manual",
            "status": "open",
            "priority": strategies.manual_priority(now) + clock,
            "age_bonus": clock,
            "note": note,
            "created_at": now,
            "created_by": user_id,
            "device_id": frame.device_id,
        },
    )
    if new_id is not None:
        return _summary(session, new_id), True
    existing = session.scalar(select(TASKS.c.id).where(TASKS.c.frame_pk == frame.pk, ACTIVE))
    if existing is None:  # pragma: no cover - the conflict above means one exists
        raise ConflictError(f"frame {frame_id} changed meanwhile; try again")
    return _summary(session, int(existing)), False


# --- leasing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PredictionView:
    class_id: int
    class_name: str
    confidence: float
    xyxyn: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class LeasedTask:
    """A task leased to a reviewer, with what the reviewer needs to label it."""

    id: int
    frame_id: uuid.UUID
    reason: str
    priority: float
    lease_expires_at: datetime
    width: int
    height: int
    model_version: str
    has_image: bool
    predictions: list[PredictionView] = field(default_factory=list)


def _claim_statement(*, audit_only: bool) -> Any:
    """The one-statement lease (see the module doc); binds ``now``, ``user_id``, ``expires``.
    Built once: constructing SQLAlchemy statements costs more than running this one."""
    now = bindparam("now", type_=UTCDateTime())
    pick = select(TASKS.c.id).where(
        ACTIVE, or_(TASKS.c.lease_expires_at.is_(None), TASKS.c.lease_expires_at < now)
    )
    if audit_only:
        # Literal, like the partial index ix_label_tasks_audit_queue's predicate.
        pick = pick.where(text("reason = 'audit'")).order_by(TASKS.c.id)
    else:
        pick = pick.order_by(TASKS.c.priority.desc(), TASKS.c.id.desc())
    return (
        update(TASKS)
        .where(TASKS.c.id == pick.limit(1).with_for_update(skip_locked=True).scalar_subquery())
        .values(
            status="leased",
            leased_by=bindparam("user_id"),
            leased_at=now,
            lease_expires_at=bindparam("expires", type_=UTCDateTime()),
        )
        .returning(
            TASKS.c.id,
            TASKS.c.frame_pk,
            TASKS.c.reason,
            TASKS.c.priority,
            TASKS.c.lease_expires_at,
        )
    )


_CLAIM_TOP = _claim_statement(audit_only=False)
_CLAIM_AUDIT = _claim_statement(audit_only=True)
_LEASED_FRAME = select(
    Frame.id, Frame.width, Frame.height, Frame.model_version, Frame.image_sha256
).where(Frame.pk == bindparam("frame_pk"))
_FRAME_PREDICTIONS = (
    select(
        Detection.class_id,
        Detection.class_name,
        Detection.confidence,
        Detection.x1,
        Detection.y1,
        Detection.x2,
        Detection.y2,
    )
    .where(Detection.frame_pk == bindparam("frame_pk"))
    .order_by(Detection.confidence.desc(), Detection.id)
)


def lease_next(
    session: Session,
    *,
    user_id: int,
    lease_seconds: float,
    audit_share: float,
    rng: random.Random | None = None,
) -> LeasedTask | None:
    """Lease the next task to ``user_id`` for ``lease_seconds``; None when nothing is open.

    With probability ``audit_share`` the oldest open audit task is taken first (the audit
    share); otherwise, or when no audit task is open, the highest priority one (newest first
    among equals). Must run in a write transaction (see the module doc)."""
    conn = session.connection()
    now = _now()
    params = {"now": now, "user_id": user_id, "expires": now + timedelta(seconds=lease_seconds)}
    row = None
    if audit_share > 0 and (rng or random).random() < audit_share:
        row = conn.execute(_CLAIM_AUDIT, params).one_or_none()
    if row is None:
        row = conn.execute(_CLAIM_TOP, params).one_or_none()
    if row is None:
        return None
    frame = conn.execute(_LEASED_FRAME, {"frame_pk": row.frame_pk}).one()
    detections = conn.execute(_FRAME_PREDICTIONS, {"frame_pk": row.frame_pk}).all()
    return LeasedTask(
        id=row.id,
        frame_id=frame.id,
        reason=row.reason,
        priority=row.priority,
        lease_expires_at=row.lease_expires_at,
        width=frame.width,
        height=frame.height,
        model_version=frame.model_version,
        has_image=frame.image_sha256 is not None,
        predictions=[
            PredictionView(
                class_id=d.class_id,
                class_name=d.class_name,
                confidence=d.confidence,
                xyxyn=(d.x1, d.y1, d.x2, d.y2),
            )
            for d in detections
        ],
    )


def _not_yours(session: Session, task_id: int, user_id: int) -> Exception:
    """Why a lease holder's action on ``task_id`` found no row: 404 or 409."""
    row = session.execute(
        select(TASKS.c.status, TASKS.c.leased_by).where(TASKS.c.id == task_id)
    ).one_or_none()
    if row is None:
        return NotFoundError(f"no labeling task {task_id}")
    if row.status == "leased" and row.leased_by != user_id:
        return ConflictError(f"task {task_id} is leased to someone else now (your lease expired)")
    return ConflictError(f"task {task_id} is {row.status}, not leased to you: lease it first")


_END_LEASE_WHERE = (
    TASKS.c.id == bindparam("task_id"),
    TASKS.c.status == "leased",
    TASKS.c.leased_by == bindparam("user_id"),
)
_END_LEASE_RETURNING = (TASKS.c.frame_pk, TASKS.c.leased_at, TASKS.c.note)
_SUBMIT_LEASE = (
    update(TASKS)
    .where(*_END_LEASE_WHERE)
    .values(
        status="done",
        lease_expires_at=None,
        done_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(*_END_LEASE_RETURNING)
)


def _end_lease(session: Session, *, task_id: int, user_id: int, values: dict[str, Any]) -> Any:
    """Change a task that ``user_id`` holds (even past its expiry, while nobody else took it)."""
    row = session.execute(
        update(TASKS).where(*_END_LEASE_WHERE).values(**values).returning(*_END_LEASE_RETURNING),
        {"task_id": task_id, "user_id": user_id},
    ).one_or_none()
    if row is None:
        raise _not_yours(session, task_id, user_id)
    return row


def release(session: Session, *, task_id: int, user_id: int) -> None:
    """Give a leased task back to the queue, unlabeled."""
    _end_lease(
        session,
        task_id=task_id,
        user_id=user_id,
        values={"status": "open", "leased_by": None, "leased_at": None, "lease_expires_at": None},
    )


def skip(session: Session, *, task_id: int, user_id: int, reason: str) -> None:
    """Take a leased task out of the queue without labels (unusable image, not a product…);
    the reason is appended to the task's note."""
    row = _end_lease(
        session,
        task_id=task_id,
        user_id=user_id,
        values={"status": "skipped", "lease_expires_at": None, "done_at": _now()},
    )
    note = f"skipped: {reason}" if not row.note else f"{row.note}\nskipped: {reason}"
    session.execute(update(TASKS).where(TASKS.c.id == task_id).values(note=note))


def reopen(session: Session, *, task_id: int) -> TaskSummary:
    """Put a done, skipped or expired task back in the queue, keeping its priority."""
    status = session.scalar(select(TASKS.c.status).where(TASKS.c.id == task_id))
    if status is None:
        raise NotFoundError(f"no labeling task {task_id}")
    if status not in ("done", "skipped", "expired"):
        raise ConflictError(
            f"task {task_id} is {status}: only a done, skipped or expired task reopens"
        )
    try:
        with session.begin_nested():
            session.execute(
                update(TASKS)
                .where(TASKS.c.id == task_id)
                .values(
                    status="open",
                    leased_by=None,
                    leased_at=None,
                    lease_expires_at=None,
                    done_at=None,
                    expired_at=None,
                )
            )
    except IntegrityError as exc:
        raise ConflictError(
            f"the frame of task {task_id} already has an open task: label that one"
        ) from exc
    return _summary(session, task_id)


# --- submitting ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmittedLabel:
    class_id: int
    xyxyn: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class SubmissionResult:
    id: int
    task_id: int
    frame_id: uuid.UUID
    model_version: str
    tp: int
    fp: int
    fn: int
    seconds_open: float | None


_INSERT_SUBMISSION = insert(SUBMISSIONS).returning(SUBMISSIONS.c.id)


def submit(
    session: Session, *, task_id: int, user_id: int, labels: Sequence[SubmittedLabel]
) -> SubmissionResult:
    """Store ``user_id``'s labels for a task they lease and close it; the frame's predictions
    are matched against them (see ``visionloop.server.review``).

    Boxes must already be valid (0..1, x1 < x2, y1 < y2: the request schema checks); an unknown
    class is an InvalidInputError. Nothing is stored when anything fails."""
    conn = session.connection()
    known = {r.id for r in conn.execute(_LIST_CLASSES)}
    unknown = sorted({lab.class_id for lab in labels} - known)
    if unknown:
        raise InvalidInputError(
            f"unknown class id(s) {unknown}: see GET /api/v1/classes (an admin adds classes)"
        )
    now = _now()
    row = conn.execute(
        _SUBMIT_LEASE, {"task_id": task_id, "user_id": user_id, "now": now}
    ).one_or_none()
    if row is None:
        raise _not_yours(session, task_id, user_id)
    frame = conn.execute(_LEASED_FRAME, {"frame_pk": row.frame_pk}).one()
    predictions = [
        Prediction(class_id=d.class_id, confidence=d.confidence, xyxyn=(d.x1, d.y1, d.x2, d.y2))
        for d in conn.execute(_FRAME_PREDICTIONS, {"frame_pk": row.frame_pk})
    ]
    counts = match(predictions, [Label(class_id=lab.class_id, xyxyn=lab.xyxyn) for lab in labels])
    seconds_open = (now - row.leased_at).total_seconds() if row.leased_at is not None else None
    submission_id = conn.execute(
        _INSERT_SUBMISSION,
        {
            "frame_pk": row.frame_pk,
            "task_id": task_id,
            "user_id": user_id,
            "source": "review",
            "submitted_at": now,
            "seconds_open": seconds_open,
            "labels": [{"class_id": lab.class_id, "xyxyn": list(lab.xyxyn)} for lab in labels],
            "model_version": frame.model_version,
            "tp": counts.tp,
            "fp": counts.fp,
            "fn": counts.fn,
        },
    ).scalar_one()
    return SubmissionResult(
        id=int(submission_id),
        task_id=task_id,
        frame_id=frame.id,
        model_version=frame.model_version,
        tp=counts.tp,
        fp=counts.fp,
        fn=counts.fn,
        seconds_open=seconds_open,
    )


# --- statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionReview:
    """What reviews say about one model version (latest submission per frame only)."""

    model_version: str
    frames: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    audit_frames: int
    audit_objects: int
    audit_misses: int
    miss_rate: float | None
    miss_rate_low: float | None
    miss_rate_high: float | None


@dataclass(frozen=True, slots=True)
class DeviceQueue:
    """One device's share of the queue: open tasks (and live leases), expired tasks and the
    near-duplicates not queued."""

    device_id: int
    open: int
    expired: int
    duplicates: int


def device_queues(session: Session) -> list[DeviceQueue]:
    """Per device with any task or suppressed duplicate, by device id."""
    rows: dict[int, list[int]] = {}
    counts = session.execute(
        select(
            TASKS.c.device_id,
            func.coalesce(func.sum(case((ACTIVE, 1), else_=0)), 0),
            func.coalesce(func.sum(case((TASKS.c.status == "expired", 1), else_=0)), 0),
        )
        .where(TASKS.c.device_id.is_not(None))
        .group_by(TASKS.c.device_id)
    )
    for device_id, n_open, n_expired in counts:
        rows[int(device_id)] = [int(n_open), int(n_expired), 0]
    for device_id, n in session.execute(select(COUNTERS.c.device_id, COUNTERS.c.duplicates)):
        rows.setdefault(int(device_id), [0, 0, 0])[2] = int(n)
    return [DeviceQueue(d, *v) for d, v in sorted(rows.items())]


@dataclass(frozen=True, slots=True)
class LabelingStats:
    tasks: dict[str, dict[str, int]]
    labels_per_class: list[tuple[int, str, int]]
    reviewed_frames: int
    frames_since: int | None
    labels_since: int | None
    versions: list[VersionReview]
    devices: list[DeviceQueue] = field(default_factory=list)


def _labels_per_class_sql(session: Session) -> Any:
    """Boxes per class id in each reviewed frame's latest submission (the JSON is unnested by the
    database: SQLite ``json_each``, PostgreSQL ``json_array_elements``)."""
    latest = (
        "NOT EXISTS (SELECT 1 FROM label_submissions n WHERE n.frame_pk = s.frame_pk "
        "AND n.id > s.id)"
    )
    if session.get_bind().dialect.name == "postgresql":
        return text(
            "SELECT (j.value ->> 'class_id')::int AS class_id, count(*) FROM label_submissions s "
            "CROSS JOIN LATERAL json_array_elements(s.labels) AS j(value) "
            f"WHERE {latest} GROUP BY 1 ORDER BY 1"
        )
    return text(
        "SELECT CAST(json_extract(j.value, '$.class_id') AS INTEGER) AS class_id, count(*) "
        f"FROM label_submissions s, json_each(s.labels) AS j WHERE {latest} "
        "GROUP BY 1 ORDER BY 1"
    )


def labeling_stats(session: Session, *, since: datetime | None) -> LabelingStats:
    """Queue counts, labels and per-version review results.

    ``tasks[reason][state]``: state is open (leases past their expiry count as open), leased,
    done or skipped. Labels are the boxes of each reviewed frame's latest submission.
    ``frames_since``/``labels_since``: reviewed frames and their boxes whose latest submission is
    at or after ``since`` (the production model's registration), None without ``since``.
    Per version: precision = tp / (tp + fp) over its reviewed frames; from ``audit`` frames only,
    the miss rate = fn / (tp + fn), the share of true objects it did not detect, with a 95%
    Wilson interval."""
    now = _now()
    state = (
        select(
            TASKS.c.reason,
            TASKS.c.status,
            (TASKS.c.lease_expires_at < now).label("expired"),
            func.count(),
        )
        .group_by(TASKS.c.reason, TASKS.c.status, "expired")
        .order_by(TASKS.c.reason)
    )
    tasks: dict[str, dict[str, int]] = {}
    for reason, status, expired, n in session.execute(state):
        counts = tasks.setdefault(
            reason, {"open": 0, "leased": 0, "done": 0, "skipped": 0, "expired": 0}
        )
        key = "open" if status == "leased" and expired else status
        counts[key] = counts.get(key, 0) + int(n)

    # A frame's latest submission is the one no later submission of that frame follows (an
    # anti-join over (frame_pk, id): 5x faster on PostgreSQL than "id IN (SELECT max(id) ...)").
    later = SUBMISSIONS.alias("later")
    latest_only = ~exists().where(
        later.c.frame_pk == SUBMISSIONS.c.frame_pk, later.c.id > SUBMISSIONS.c.id
    )
    audit = TASKS.c.reason == "audit"
    recent = SUBMISSIONS.c.submitted_at >= since if since is not None else literal(False)

    def count_if(condition: ColumnElement[bool], value: Any = 1) -> Any:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    per_version = session.execute(
        select(
            SUBMISSIONS.c.model_version,
            func.count(),
            func.sum(SUBMISSIONS.c.tp),
            func.sum(SUBMISSIONS.c.fp),
            func.sum(SUBMISSIONS.c.fn),
            count_if(audit),
            count_if(audit, SUBMISSIONS.c.tp + SUBMISSIONS.c.fn),
            count_if(audit, SUBMISSIONS.c.fn),
            count_if(recent),
            count_if(recent, func.json_array_length(SUBMISSIONS.c.labels)),
        )
        .outerjoin(TASKS, TASKS.c.id == SUBMISSIONS.c.task_id)
        .where(latest_only)
        .group_by(SUBMISSIONS.c.model_version)
    ).all()
    names = dict(list_classes(session))
    per_class = session.execute(_labels_per_class_sql(session)).all()
    reviewed = sum(int(row[1]) for row in per_version)
    frames_since = sum(int(row[8]) for row in per_version)
    labels_since = sum(int(row[9]) for row in per_version)
    by_version = {
        row[0]: tuple(int(v or 0) for v in row[1:8]) for row in per_version if row[0] is not None
    }
    versions = []
    for version, (frames, tp, fp, fn, a_frames, a_objects, a_misses) in sorted(by_version.items()):
        low = high = rate = None
        if a_objects:
            rate = a_misses / a_objects
            low, high = wilson_interval(a_misses, a_objects)
        versions.append(
            VersionReview(
                model_version=version,
                frames=frames,
                tp=tp,
                fp=fp,
                fn=fn,
                precision=tp / (tp + fp) if tp + fp else None,
                audit_frames=a_frames,
                audit_objects=a_objects,
                audit_misses=a_misses,
                miss_rate=rate,
                miss_rate_low=low,
                miss_rate_high=high,
            )
        )
    return LabelingStats(
        tasks=tasks,
        labels_per_class=[
            (int(cid), names.get(int(cid), f"class {cid}"), int(n)) for cid, n in per_class
        ],
        reviewed_frames=reviewed,
        frames_since=frames_since if since is not None else None,
        labels_since=labels_since if since is not None else None,
        versions=versions,
        devices=device_queues(session),
    )
