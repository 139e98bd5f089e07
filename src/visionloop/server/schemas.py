"""Request and response bodies of the HTTP API (the frame record itself is in visionloop.types)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionloop.server.auth import Role
from visionloop.server.passwords import MAX_LENGTH as PASSWORD_MAX_LENGTH
from visionloop.server.passwords import MIN_LENGTH as PASSWORD_MIN_LENGTH
from visionloop.server.store.jobs import JobStatus
from visionloop.types import (
    CAPTURED_AT_MAX,
    CAPTURED_AT_MIN,
    NO_NUL,
    FrameStats,
    Heartbeat,
    SampleReason,
)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_In):
    username: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    must_change_password: bool = Field(
        default=False,
        description="An admin reset the password: only POST /auth/password works until changed.",
    )


class PasswordChange(_In):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description=(
            f"At least {PASSWORD_MIN_LENGTH} characters, not one of the most common passwords, "
            "not the user name."
        ),
    )


class PersonOut(BaseModel):
    """A person as the Users page lists them."""

    id: int
    name: str
    role: Role
    disabled: bool
    must_change_password: bool
    created_at: datetime
    last_sign_in_at: datetime | None
    deleted_at: datetime | None = Field(description="Deleted people keep their name and reviews.")
    sessions: int = Field(description="Sessions that have not expired.")
    reviews: int = Field(description="Label submissions made.")


class PersonCreate(_In):
    name: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    role: Role = Role.VIEWER
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description=(
            "A first password, which the person must change at their first sign-in. Omitted: "
            "one is generated and shown once in the answer."
        ),
    )


class PersonCreated(BaseModel):
    person: PersonOut
    temporary_password: str | None = Field(
        description="The generated password (shown once), or null when the request gave one."
    )


class PersonUpdate(_In):
    role: Role


class PasswordReset(_In):
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX_LENGTH,
        description="The temporary password. Omitted: one is generated and shown once.",
    )


class PasswordResetDone(BaseModel):
    person: PersonOut
    temporary_password: str | None = Field(
        description="The generated password (shown once), or null when the request gave one."
    )


class SignOutDone(BaseModel):
    sessions_ended: int


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="Who acted: a user name, or cli:<login> for the command line.")
    action: str = Field(
        description=(
            "create, role, disable, enable, reset_password, change_password, sign_out or delete."
        )
    )
    target_id: int | None
    target: str | None = Field(description="The person acted on, by their name at the time.")
    detail: str | None


class DeviceCreate(_In):
    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="A unique name, e.g. 'line1-cam2'.",
    )


class DeviceOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    disabled: bool
    disabled_at: datetime | None
    last_seen_at: datetime | None = Field(description="Last ingest or heartbeat.")
    model_version: str | None
    heartbeat: Heartbeat | None = Field(description="The latest heartbeat, as the agent sent it.")
    clock_offset_s: float | None = Field(
        description=(
            "Server receive time minus the latest heartbeat's sent_at, in seconds: positive when "
            "the device's clock is behind (plus the network delay); null when unknown."
        )
    )


class DeviceCreated(BaseModel):
    device: DeviceOut
    token: str = Field(description="The device's bearer token. Shown once: store it now.")


class DetectionOut(BaseModel):
    class_id: int
    class_name: str
    confidence: float
    xyxyn: tuple[float, float, float, float] = Field(
        description="Box corners normalised to 0..1 of the original frame."
    )


class FrameOut(BaseModel):
    id: uuid.UUID
    device_id: int
    captured_at: datetime
    received_at: datetime
    model_version: str
    width: int
    height: int
    stats: FrameStats
    sample_reason: SampleReason | None
    detection_count: int
    max_confidence: float | None
    has_image: bool
    source_index: int | None = Field(
        description="The frame's number in its source (see the frame record); null if not sent."
    )


class FrameDetail(FrameOut):
    detections: list[DetectionOut]
    image_url: str | None


class FramePageOut(BaseModel):
    items: list[FrameOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class ImageStored(BaseModel):
    frame_id: uuid.UUID
    sha256: str
    size_bytes: int
    content_type: str


class ClassStats(BaseModel):
    class_name: str
    frames: int = Field(description="Frames in the window with at least one such detection.")
    detections: int


class DeviceStats(BaseModel):
    device_id: int
    name: str
    frames: int
    detections: int
    last_seen_at: datetime | None


class Histogram(BaseModel):
    edges: list[float] = Field(description="Bin edges, len(counts) + 1; the last bin includes 1.0.")
    counts: list[int]


class StatsSummary(BaseModel):
    window: str
    since: datetime
    until: datetime
    frames: int
    detections: int
    per_class: list[ClassStats]
    per_device: list[DeviceStats]
    confidence_histogram: Histogram
    frames_total: int = Field(description="All frames ever stored.")
    detections_total: int = Field(description="All detections ever stored.")


class RatePointOut(BaseModel):
    start: datetime = Field(description="Start of the bucket (capture time, UTC).")
    frames: int
    detections: int
    frames_per_min: float = Field(description="frames / the bucket's length in minutes.")
    detections_per_min: float


class RateSeries(BaseModel):
    window: str
    since: datetime = Field(description="Start of the first bucket (the one holding now - window).")
    until: datetime
    bucket_s: int = Field(description="Bucket length: 60 s up to a 1h window, else 3600 s.")
    points: list[RatePointOut] = Field(description="Every bucket, oldest first, zeros included.")


_WINDOW = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=3660)


def parse_window(text: str) -> timedelta:
    """``"15m"``, ``"24h"``, ``"7d"`` -> a timedelta; ValueError otherwise."""
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError("window must be a number and a unit s, m, h or d, e.g. 24h")
    window = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise ValueError("window must be positive and at most 3660d")
    return window


# --- labeling ------------------------------------------------------------------------------------

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class ClassOut(BaseModel):
    id: int = Field(description="The class id labels use (the YOLO class id).")
    name: str


class ClassCreate(_In):
    name: str = Field(
        min_length=1, max_length=64, pattern=NO_NUL, description="A new class, e.g. 'chip'."
    )


class ManualTaskCreate(_In):
    frame_id: uuid.UUID = Field(description="A frame that has an image.")
    note: str | None = Field(
        default=None, max_length=2000, pattern=NO_NUL, description="Why it needs review."
    )


class TaskOut(BaseModel):
    id: int
    frame_id: uuid.UUID
    reason: str = Field(description="uncertain, audit, drift or manual.")
    status: str = Field(description="open, leased, done or skipped.")
    priority: float
    note: str | None
    created_at: datetime
    lease_expires_at: datetime | None


class PredictionOut(BaseModel):
    class_id: int
    class_name: str
    confidence: float
    xyxyn: tuple[float, float, float, float]


class LeasedTaskOut(BaseModel):
    id: int
    frame_id: uuid.UUID
    reason: str
    priority: float
    lease_expires_at: datetime
    image_url: str | None = Field(description="GET it with the same session cookie.")
    width: int
    height: int
    model_version: str
    predictions: list[PredictionOut] = Field(description="The model's detections on the frame.")


class LeaseOut(BaseModel):
    task: LeasedTaskOut
    classes: list[ClassOut]


class SkipRequest(_In):
    reason: str = Field(
        min_length=1, max_length=500, pattern=NO_NUL, description="Why it cannot be labeled."
    )


class LabelIn(_In):
    class_id: int = Field(ge=0)
    xyxyn: tuple[Unit, Unit, Unit, Unit] = Field(
        description="Box corners [x1, y1, x2, y2] normalised to 0..1, x1 < x2 and y1 < y2."
    )

    @model_validator(mode="after")
    def _ordered(self) -> LabelIn:
        x1, y1, x2, y2 = self.xyxyn
        if x2 <= x1 or y2 <= y1:
            raise ValueError("a box needs x1 < x2 and y1 < y2")
        return self


class SubmitRequest(_In):
    labels: list[LabelIn] = Field(
        max_length=500, description="Every object in the image (at most 500); [] means none."
    )


class SubmissionOut(BaseModel):
    id: int
    task_id: int
    frame_id: uuid.UUID
    model_version: str
    tp: int = Field(description="Predictions matching a label (same class, IoU >= 0.5).")
    fp: int = Field(description="Predictions matching no label.")
    fn: int = Field(description="Labels no prediction matched (misses).")
    seconds_open: float | None = Field(description="Seconds from the lease to this submission.")


class TaskCounts(BaseModel):
    open: int
    leased: int
    done: int
    skipped: int
    expired: int = Field(
        default=0, description="Dropped at the per-device cap of open tasks (frames kept)."
    )


class DeviceQueueOut(BaseModel):
    device_id: int
    open: int = Field(description="Open and leased tasks.")
    expired: int = Field(description="Tasks expired at VISIONLOOP_LABELING_MAX_OPEN_PER_DEVICE.")
    duplicates: int = Field(
        description="Sampled frames not queued: near-duplicates of the device's recent tasks."
    )


class ClassLabels(BaseModel):
    class_id: int
    class_name: str
    labels: int


class ProductionLabels(BaseModel):
    version: str
    registered_at: datetime
    reviewed_frames: int = Field(description="Frames reviewed since its registration.")
    labels: int = Field(description="Boxes in those reviews.")


class VersionReviewOut(BaseModel):
    model_version: str
    reviewed_frames: int
    tp: int
    fp: int
    fn: int
    precision: float | None = Field(description="tp / (tp + fp) on reviewed frames.")
    audit_frames: int
    audit_objects: int = Field(description="Labeled objects on audit frames (tp + fn).")
    audit_misses: int
    miss_rate: float | None = Field(description="fn / (tp + fn) on audit frames only.")
    miss_rate_ci95: tuple[float, float] | None = Field(description="Wilson score interval.")


class LabelingStatsOut(BaseModel):
    tasks: dict[str, TaskCounts] = Field(description="Per reason (uncertain, audit, ...).")
    totals: TaskCounts
    reviewed_frames: int
    labels_per_class: list[ClassLabels]
    since_production: ProductionLabels | None = Field(
        description="Null when no production model is registered or the registry is unreachable."
    )
    versions: list[VersionReviewOut]
    devices: list[DeviceQueueOut] = Field(
        default_factory=list, description="The queue per device: open, expired, duplicates."
    )
    duplicates_suppressed: int = Field(
        default=0, description="Near-duplicate frames not queued, all devices."
    )


class JobCreate(_In):
    kind: str = Field(min_length=1, max_length=64, description="A registered job kind.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The kind's parameters (checked against its schema)."
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="Starts allowed; default VISIONLOOP_JOB_MAX_ATTEMPTS.",
    )


class JobOut(BaseModel):
    id: int
    kind: str
    params: dict[str, Any]
    status: JobStatus
    progress: float = Field(description="0..1, as the job last reported it.")
    message: str
    result: dict[str, Any] | None = Field(description="The job's answer, once it succeeded.")
    error: str | None = Field(description="Why it failed.")
    created_by: str = Field(description="A user name, 'cli' or 'scheduler'.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    cancel_requested: bool


class JobDetail(JobOut):
    log_tail: str = Field(description="The last lines of the log (the whole log: /log).")


class JobPageOut(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


# --- drift monitoring


def check_window_time(ts: datetime) -> None:
    """A time bounding a drift window: aware, within the capture times frames may carry."""
    if ts.tzinfo is None:
        raise ValueError("times need a time zone (e.g. a trailing Z)")
    if not CAPTURED_AT_MIN <= ts <= CAPTURED_AT_MAX:
        raise ValueError(f"times must be within {CAPTURED_AT_MIN.year}..{CAPTURED_AT_MAX.year}")


class DriftReferenceIn(_In):
    device_id: int = Field(ge=1, le=2**31 - 1)
    since: datetime = Field(description="Start of the reference window (capture time, aware).")
    until: datetime = Field(description="End of the reference window (exclusive).")

    @model_validator(mode="after")
    def _ordered_and_aware(self) -> DriftReferenceIn:
        for ts in (self.since, self.until):
            check_window_time(ts)
        if self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class DriftReferenceOut(BaseModel):
    device_id: int
    since: datetime
    until: datetime
    pinned_by: str
    pinned_at: datetime


class DriftCheckRequest(_In):
    device_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="One device; default every enabled one."
    )


class DriftCheckQueued(BaseModel):
    job_id: int = Field(description="The drift_check job (see /jobs/{id}).")
    device_ids: list[int]


class FeatureDrift(BaseModel):
    feature: str
    method: str = Field(description="The test Evidently chose, e.g. 'K-S p_value'.")
    score: float
    threshold: float
    drifted: bool
    reference_quantiles: list[float] | None = Field(
        default=None,
        description="The reference's 5th, 25th, 50th, 75th and 95th percentiles (numerical).",
    )
    window_quantiles: list[float] | None = Field(
        default=None, description="The same percentiles of the checked window."
    )


class DriftCheckOut(BaseModel):
    id: int
    device_id: int
    job_id: int | None
    checked_at: datetime
    reference_kind: str = Field(
        description=(
            "'model' (the model version's profile), 'inherited' (an earlier production "
            "version's profile, for a version without one), 'pinned' or 'auto' (the device's "
            "first frames with its version, outside drift alarms)."
        )
    )
    reference_version: str | None = Field(
        description="Whose profile ('model', 'inherited') or first frames ('auto') it is."
    )
    reference_start: datetime
    reference_end: datetime
    reference_frames: int
    window_start: datetime
    window_end: datetime
    window_frames: int
    reference_stride: int = Field(
        description=(
            "The tests compared every this-many frames of the reference: its frames thinned "
            "by their decorrelation lag (consecutive frames are not independent); 1 = all."
        )
    )
    window_stride: int = Field(description="The same for the checked window.")
    features: list[FeatureDrift]
    drifted_features: int
    share_drifted: float
    drifted: bool = Field(
        description="share_drifted reached VISIONLOOP_DRIFT_ALARM_SHARE (never when inconclusive)."
    )
    verdict: str = Field(
        description=(
            "'drifted', 'clean' or 'inconclusive': too few independent frames to judge "
            "(effective_frames under the minimum), whatever the tests said; not counted by the "
            "alarm."
        )
    )
    verdict_reason: str | None = Field(description="Why the check is inconclusive, in words.")
    effective_frames: int | None = Field(
        description="Independent frames in the poorer window: its frames over their lag."
    )
    alarm_event: str | None = Field(description="'opened' or 'closed': the alarm this check moved.")
    has_report: bool
    duration_s: float


class DriftCheckPageOut(BaseModel):
    items: list[DriftCheckOut]
    next_cursor: str | None


class FeaturePointOut(BaseModel):
    start: datetime = Field(description="Start of the interval (capture time).")
    frames: int = Field(description="Frames sampled from the interval (at most sample_size).")
    quantiles: list[float] = Field(description="The sample's percentiles (see quantiles).")


class FeatureSeriesOut(BaseModel):
    feature: str
    reference_quantiles: list[float] | None = Field(
        description="The reference's percentiles, from the latest check (None: never checked)."
    )
    points: list[FeaturePointOut] = Field(description="Intervals with frames, oldest first.")


class DriftFeaturesOut(BaseModel):
    device_id: int
    since: datetime
    until: datetime
    interval_s: float
    sample_size: int = Field(description="Most frames read per interval (the first ones).")
    quantiles: list[float] = Field(description="Which percentiles, e.g. [0.05, 0.25, 0.5, …].")
    reference_kind: str | None = Field(
        description="'model', 'pinned' or 'auto' reference of the latest check (None: none)."
    )
    reference_check_id: int | None = Field(description="The check the reference band is from.")
    features: list[FeatureSeriesOut]


class DeviceDriftOut(BaseModel):
    device_id: int
    device: str
    state: str = Field(
        description=(
            "One word for the device's drift, the same on every page: 'alarm' (open), "
            "'drifted' (the latest check drifted, not yet enough in a row), 'inconclusive' (the "
            "latest check had too few independent frames), 'clean' or 'not_checked'."
        )
    )
    alarm: bool
    since: datetime | None = Field(description="When the open alarm opened.")
    closed_at: datetime | None = Field(description="When the alarm last closed (none open).")
    close_reason: str | None = Field(
        description="Why it closed, e.g. 'version 2 learned these conditions: …'."
    )
    last_check: DriftCheckOut | None
    drifted_features: list[str] = Field(
        description="Drifted features of the latest check (none when it was inconclusive)."
    )
    reference: DriftReferenceOut | None = Field(description="The pinned reference, if any.")


class RetrainingStatusOut(BaseModel):
    eligible: bool = Field(description="Whether the policy would queue a train job now.")
    reason: str = Field(description="Why (or why not), in words.")
    labels_since_last_training: int = Field(
        description="Reviewed frames whose labels were submitted since the last training's cut."
    )
    min_labels: int = Field(description="The threshold in force (lower while drift is on).")
    drift_alarm: bool
    cooldown_until: datetime | None = Field(
        description="No automatic train job before this time (last queue time + cooldown)."
    )
    auto_promote: bool
    last_job: JobOut | None = Field(description="The newest train job, if any.")


class RetrainingTrigger(_In):
    reason: str = Field(min_length=1, max_length=500, description="Why retrain now (recorded).")


class JobQueued(BaseModel):
    job_id: int
    warning: str | None = Field(
        default=None,
        description=(
            "A train job queued with fewer reviewed labels since the last training than the "
            "retraining policy's minimum says so, with the numbers (the job is queued anyway)."
        ),
    )


class ModelVersionOut(BaseModel):
    version: str
    aliases: list[str]
    sha256: str
    size_bytes: int
    metrics: dict[str, float] = Field(description="mAP50, mAP50-95, per-class AP50 and recall.")
    gate: dict[str, Any] | None = Field(
        description="The promotion gate report (gate.json), for versions a train job made."
    )
    gate_passed: bool | None = Field(description="The gate's verdict; null: not gated.")
    created_at: datetime
    description: str
    train_job_id: int | None = Field(description="The train job that made it, if one did.")
    drift_reference: str = Field(
        description=(
            "What drift checks of devices running it compare with, in words: its own profile, "
            "'inherited from version N' (no usable profile of its own), or each device's first "
            "frames with it."
        )
    )
    tags: dict[str, str] = Field(description="Every tag of the version (who promoted it, why…).")


class PromoteRequest(_In):
    reason: str = Field(min_length=1, max_length=1000, description="Why (recorded with who).")
    alias: str = Field(default="production", pattern="^(production|staging)$")
    force: bool = Field(
        default=False, description="Promote a version whose gate failed (recorded)."
    )


class RollbackRequest(_In):
    reason: str = Field(min_length=1, max_length=1000, description="Why (recorded with who).")
    alias: str = Field(default="production", pattern="^(production|staging)$")
