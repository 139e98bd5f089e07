"""Database tables (SQLAlchemy 2 declarative); the schema itself is created by Alembic migrations.

Times are stored as UTC. Boxes are normalised ``xyxyn`` in 0..1 of the original frame, one column
per coordinate. A frame has two keys: ``id``, the client's UUID (the public id and idempotency
key), and ``pk``, an internal sequential integer that detections refer to: random UUIDs in every
detection index would scatter each batch's writes over the whole B-tree. ``detections`` repeats
its frame's ``captured_at`` and ``device_id`` so that the statistics can aggregate detections over
a time window from one covering index, without a join.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; read back aware (UTC) on SQLite too, which keeps no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: visionloop stores aware (UTC) times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class Device(Base):
    """An edge agent (one camera). It authenticates with device tokens."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    # The last heartbeat body (visionloop.types.Heartbeat as JSON).
    heartbeat: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(64))
    # Server receive time minus the last heartbeat's sent_at, in seconds (None: never told).
    clock_offset_s: Mapped[float | None] = mapped_column(Float)


class DeviceToken(Base):
    """A device's bearer token. Only its sha256 is stored: tokens are 256-bit random strings."""

    __tablename__ = "device_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class User(Base):
    """A person who signs in to the dashboard. ``role`` is admin, reviewer or viewer.

    A deleted person keeps the row (``deleted_at`` set, no usable password, disabled), so that
    their reviews and the audit list keep their name; the name is not given to anyone else.
    ``must_change_password``: set by an admin's reset (or an account an admin made), the person
    may only change their password until they do.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    deleted_at: Mapped[datetime | None]
    last_sign_in_at: Mapped[datetime | None]


class UserSession(Base):
    """A signed-in person's session; the cookie holds a random token, the table its sha256.

    It ends at ``expires_at`` (absolute) or when unused for the idle time after ``last_seen_at``.
    """

    __tablename__ = "sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime]


class UserAuditEvent(Base):
    """One change to a person's account: who did it (``actor``: a user name, or ``cli:<login>``
    for the command line), when, what (``action``) and to whom (``target``, the name at the
    time). Names are copied so that the list reads the same after any change."""

    __tablename__ = "user_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_user_audit_target_id", "target_id", "id"),)


class LoginFailure(Base):
    """One failed sign-in, kept for the throttle's window. ``key`` is ``user:<name>`` or
    ``addr:<client address>``; a table rather than process memory, so that every server replica
    counts the same failures."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    failed_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (Index("ix_login_failures_key_failed_at", "key", "failed_at"),)


class Frame(Base):
    """One processed frame as the edge agent reported it; ``id`` is the client's idempotency key."""

    __tablename__ = "frames"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    captured_at: Mapped[datetime]
    received_at: Mapped[datetime]
    model_version: Mapped[str] = mapped_column(String(64))
    width: Mapped[int]
    height: Mapped[int]
    brightness: Mapped[float] = mapped_column(Float)
    contrast: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    sample_reason: Mapped[str | None] = mapped_column(String(16))
    detection_count: Mapped[int]
    max_confidence: Mapped[float | None] = mapped_column(Float)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    image_content_type: Mapped[str | None] = mapped_column(String(32))
    # The frame's number in its source (FrameRecord.source_index); None when not sent.
    source_index: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_frames_captured_at_pk", "captured_at", "pk"),
        Index(
            "ix_frames_device_id_captured_at", "device_id", "captured_at", "pk", "detection_count"
        ),
        # Partial: only sampled frames are in it, so "sampled only" lists stay cheap.
        Index(
            "ix_frames_sampled_captured_at",
            "captured_at",
            "pk",
            sqlite_where=text("sample_reason IS NOT NULL"),
            postgresql_where=text("sample_reason IS NOT NULL"),
        ),
    )


class Detection(Base):
    """One detection of a frame (denormalised ``captured_at`` and ``device_id``, see module doc)."""

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frame_pk: Mapped[int] = mapped_column(BigId, ForeignKey("frames.pk", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(Integer)
    captured_at: Mapped[datetime]
    class_id: Mapped[int]
    class_name: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_detections_frame_pk", "frame_pk", "class_name", "confidence"),
        Index("ix_detections_captured_at", "captured_at", "class_name", "confidence", "frame_pk"),
    )


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class (for fast Core inserts and selects)."""
    return cast(Table, model.__table__)


class FrameRollup(Base):
    """Frames and detections per hour of capture time and device, kept up to date by ingest, so
    that statistics over long windows read a few rows per hour instead of every frame."""

    __tablename__ = "frame_rollups"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    frames: Mapped[int]
    detections: Mapped[int]


class ClassRollup(Base):
    """Per hour of capture time, device and class: frames with at least one such detection, the
    detections, and their confidence histogram (``conf_k`` counts confidences in
    ``[k/10, (k+1)/10)``; 1.0 is in ``conf_9``)."""

    __tablename__ = "class_rollups"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    class_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    frames: Mapped[int]
    detections: Mapped[int]
    conf_0: Mapped[int]
    conf_1: Mapped[int]
    conf_2: Mapped[int]
    conf_3: Mapped[int]
    conf_4: Mapped[int]
    conf_5: Mapped[int]
    conf_6: Mapped[int]
    conf_7: Mapped[int]
    conf_8: Mapped[int]
    conf_9: Mapped[int]


# Task states that hold a frame's one active task (the unique partial index below).
ACTIVE_TASK_WHERE = "status IN ('open', 'leased')"
ACTIVE_AUDIT_WHERE = "status IN ('open', 'leased') AND reason = 'audit'"


class LabelClass(Base):
    """A class reviewers can label. ``id`` is the YOLO class id (0-based), stable forever."""

    __tablename__ = "label_classes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # 'model', 'admin' or 'import'
    created_at: Mapped[datetime]


class LabelTask(Base):
    """A frame waiting for (or having had) a person's review.

    ``status`` is open, leased, done, skipped or expired (dropped at the per-device cap, its
    frame kept; ``expired_at``); a leased task whose ``lease_expires_at`` has passed counts as
    open. ``priority`` (higher first) is set by the labeling strategy when the task is created,
    plus ``age_bonus``, the queue's age clock then (``store.labeling``); ``device_id``,
    ``dhash`` (64-bit difference hash of the image, signed) and ``top_class`` (the predicted
    class that made the frame uncertain) feed the hybrid strategy.
    """

    __tablename__ = "label_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frame_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("frames.pk", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(16))  # uncertain, audit, drift or manual
    status: Mapped[str] = mapped_column(String(16))  # open, leased, done or skipped
    priority: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    leased_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    leased_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    device_id: Mapped[int | None] = mapped_column(Integer)
    dhash: Mapped[int | None] = mapped_column(BigInteger)
    top_class: Mapped[str | None] = mapped_column(String(64))
    age_bonus: Mapped[float | None] = mapped_column(Float)
    expired_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ux_label_tasks_active_frame",
            "frame_pk",
            unique=True,
            sqlite_where=text(ACTIVE_TASK_WHERE),
            postgresql_where=text(ACTIVE_TASK_WHERE),
        ),
        # The queue: /next walks this index from the top, skipping live leases.
        Index(
            "ix_label_tasks_queue",
            "priority",
            "id",
            sqlite_where=text(ACTIVE_TASK_WHERE),
            postgresql_where=text(ACTIVE_TASK_WHERE),
        ),
        # The audit share: the oldest active audit task. Only those rows, so that planners pick
        # it even when there are none (an index on reason let SQLite scan every task instead).
        Index(
            "ix_label_tasks_audit_queue",
            "id",
            sqlite_where=text(ACTIVE_AUDIT_WHERE),
            postgresql_where=text(ACTIVE_AUDIT_WHERE),
        ),
        Index("ix_label_tasks_device_id", "device_id", "id"),
        # Queue hygiene: a device's active tasks (near-duplicates, the cap's lowest priorities)
        # and its recently done ones (near-duplicates).
        Index(
            "ix_label_tasks_device_active",
            "device_id",
            "priority",
            sqlite_where=text(ACTIVE_TASK_WHERE),
            postgresql_where=text(ACTIVE_TASK_WHERE),
        ),
        Index("ix_label_tasks_device_done_at", "device_id", "done_at"),
    )


class LabelQueueCounter(Base):
    """Per device, the sampled frames the labeling queue did not take: near-duplicates of a
    task (``duplicates``) since the counter began."""

    __tablename__ = "label_queue_counters"

    device_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    last_duplicate_at: Mapped[datetime | None]


class LabelSubmission(Base):
    """One review of a frame; every one is kept and a frame's labels are its latest (highest id).

    ``labels`` is ``[{"class_id": int, "xyxyn": [x1, y1, x2, y2]}]`` (may be empty: nothing to
    label). ``tp``/``fp``/``fn`` compare ``model_version``'s predictions of the frame with them.
    """

    __tablename__ = "label_submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    frame_pk: Mapped[int] = mapped_column(BigId, ForeignKey("frames.pk", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("label_tasks.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(16))  # 'review' or 'import'
    submitted_at: Mapped[datetime]
    seconds_open: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(64))
    tp: Mapped[int] = mapped_column(Integer, default=0)
    fp: Mapped[int] = mapped_column(Integer, default=0)
    fn: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_label_submissions_frame_pk", "frame_pk", "id"),
        Index("ix_label_submissions_task_id", "task_id"),
    )


HISTOGRAM_BINS = 10
CONF_COLUMNS = tuple(f"conf_{k}" for k in range(HISTOGRAM_BINS))

frames_table = table(Frame)
detections_table = table(Detection)


ACTIVE_TRAIN = text("kind = 'train' AND status IN ('queued', 'running')")


class Job(Base):
    """One unit of background work (see ``visionloop.jobs``): queued, then claimed by a worker,
    which heartbeats while a subprocess runs it, and finished as succeeded, failed or cancelled.

    ``log`` is the job's whole output (capped, see ``store.jobs``), deferred so that lists never
    load it; ``log_tail`` holds its last lines for the job's page. ``worker_id`` and ``attempts``
    together name the one claim allowed to write progress and the outcome.
    """

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(500), default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="", deferred=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # The claim reads queued and running jobs in id order; lists filter by status or kind.
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_kind_id", "kind", "id"),
        # At most one train job queued or running: the database refuses a second one, so two
        # triggers (a person, the policy of several workers) can never queue two.
        Index(
            "uq_jobs_one_active_train",
            "kind",
            unique=True,
            sqlite_where=ACTIVE_TRAIN,
            postgresql_where=ACTIVE_TRAIN,
        ),
    )


class JobSchedule(Base):
    """When each periodic task of the workers' scheduler last ran: the row a worker updates to
    take a tick, so that one worker of many runs it per period."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_run_at: Mapped[datetime]


class DriftReference(Base):
    """A device's pinned reference window ("this is the new normal"): its frames captured in
    ``[since, until)`` are what drift checks compare with. No row: the automatic reference (see
    ``visionloop.monitoring``)."""

    __tablename__ = "drift_references"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[datetime]
    until: Mapped[datetime]
    pinned_by: Mapped[str] = mapped_column(String(128))
    pinned_at: Mapped[datetime]


class DriftCheck(Base):
    """One drift check of a device: its reference and current windows, Evidently's verdict per
    feature (``features``: ``[{"feature", "method", "score", "threshold", "drifted"}]``), the share
    of drifted features, and the key of its gzipped HTML report in the blob store."""

    __tablename__ = "drift_checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(Integer)
    checked_at: Mapped[datetime]
    reference_kind: Mapped[str] = mapped_column(String(16))  # 'model', 'pinned' or 'auto'
    reference_version: Mapped[str | None] = mapped_column(String(64))  # 'model': its version
    reference_start: Mapped[datetime]
    reference_end: Mapped[datetime]
    reference_frames: Mapped[int]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    window_frames: Mapped[int]
    # The tests compared every this-many frames of each window (1: all; see monitoring.thinning).
    reference_stride: Mapped[int] = mapped_column(Integer, server_default="1", default=1)
    window_stride: Mapped[int] = mapped_column(Integer, server_default="1", default=1)
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    drifted_features: Mapped[int]
    share_drifted: Mapped[float] = mapped_column(Float)
    # Counted towards the alarm as drifted: never when the verdict is 'inconclusive'.
    drifted: Mapped[bool] = mapped_column(Boolean)
    # 'drifted', 'clean' or 'inconclusive' (too few independent frames to judge), and why.
    verdict: Mapped[str] = mapped_column(String(16), server_default="clean", default="clean")
    verdict_reason: Mapped[str | None] = mapped_column(String(500))
    # Independent frames in the poorer window (monitoring.thinning.effective_frames).
    effective_frames: Mapped[int | None] = mapped_column(Integer)
    # 'opened' or 'closed' when this check moved its device's alarm.
    alarm_event: Mapped[str | None] = mapped_column(String(8))
    report_sha256: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_drift_checks_device_id_id", "device_id", "id"),)


class DriftAlarm(Base):
    """A device's drift alarm state with its hysteresis counters: ``drifted_streak`` and
    ``clean_streak`` count the latest checks in a row of each kind."""

    __tablename__ = "drift_alarms"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    is_open: Mapped[bool] = mapped_column(Boolean)
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    drifted_streak: Mapped[int]
    clean_streak: Mapped[int]
    last_check_id: Mapped[int | None] = mapped_column(BigId)
    last_check_at: Mapped[datetime | None]
    # Capture time of the first frame of the current drifted streak's first check: where the
    # frames of the alarm that streak opens begin.
    streak_since: Mapped[datetime | None]
    # Why the alarm last closed, in words ("version 2 learned these conditions").
    close_reason: Mapped[str | None] = mapped_column(String(500))


class DriftAlarmPeriod(Base):
    """One open (``closed_at`` None) or past drift alarm of a device, from the capture time of
    the first drifted frames that opened it (``since``) to its close: no automatic reference is
    drawn from frames captured in it."""

    __tablename__ = "drift_alarm_periods"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    since: Mapped[datetime]
    opened_at: Mapped[datetime]
    opened_check_id: Mapped[int] = mapped_column(BigId)
    closed_at: Mapped[datetime | None]
    closed_check_id: Mapped[int | None] = mapped_column(BigId)
    close_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_drift_alarm_periods_device_id_since", "device_id", "since"),)
