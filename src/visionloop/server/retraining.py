"""The retraining policy: when enough reviewed labels (fewer while a drift alarm is on) arrived
since the last training's data was cut, and the cooldown has passed, a ``train`` job is queued.

The workers' scheduler checks it every minute (``jobs.train.policy_check``); the server answers
``GET /api/v1/retraining/status`` from the same function, and ``POST
/api/v1/retraining/trigger`` queues a job at once (a person's trigger ignores the label count
and the cooldown). At most one train job is queued or running: the jobs table's partial unique
index refuses a second (``store.jobs.enqueue`` raises ConflictError with its id).

"The last training's data cut" is the later of the production version's ``data_cut_at`` tag (set
on versions that train jobs register; a version registered otherwise counts from its
registration) and the ``data_cut_at`` of the last train job that succeeded (its candidate may
have failed the gate: its labels are not counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from visionloop.config import Settings
from visionloop.server.models import Job
from visionloop.server.store import datasets as dataset_store
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import JobStatus

if TYPE_CHECKING:
    from visionloop.training.registry import ModelVersion

TRAIN_KIND = "train"
DATA_CUT_TAG = "data_cut_at"


def drift_alarm(session: Session) -> bool:
    """Whether a drift alarm is on for any device (the policy then needs
    ``retrain_drift_min_labels`` labels instead of ``retrain_min_labels``)."""
    from visionloop.monitoring.alarms import any_open

    return any_open(session)


@dataclass(frozen=True)
class RetrainingStatus:
    """What the policy sees now and what it decides."""

    eligible: bool
    reason: str
    labels_since_last_training: int
    min_labels: int
    drift_alarm: bool
    cooldown_until: datetime | None
    auto_promote: bool
    last_job: Job | None
    since: datetime | None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _aware(value: datetime) -> datetime:
    """SQLite gives back naive UTC times."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def data_cut(session: Session, *, production: ModelVersion | None) -> datetime | None:
    """When the data of the last training was cut (see the module doc); None: never."""
    cuts: list[datetime] = []
    if production is not None:
        cuts.append(_parse_time(production.tags.get(DATA_CUT_TAG)) or production.created_at)
    succeeded = job_store.latest_job(session, kind=TRAIN_KIND, status=JobStatus.SUCCEEDED)
    if succeeded is not None and succeeded.result:
        found = _parse_time(succeeded.result.get(DATA_CUT_TAG))
        if found is not None:
            cuts.append(found)
    return max(cuts) if cuts else None


def retraining_status(
    session: Session, *, settings: Settings, production: ModelVersion | None
) -> RetrainingStatus:
    """Evaluate the policy now; ``production`` is the registry's production version."""
    since = data_cut(session, production=production)
    labels = dataset_store.count_reviewed(session, since=since)
    alarm = drift_alarm(session)
    min_labels = settings.retrain_drift_min_labels if alarm else settings.retrain_min_labels
    last = job_store.latest_job(session, kind=TRAIN_KIND)
    cooldown_until = (
        _aware(last.created_at) + timedelta(seconds=settings.retrain_cooldown)
        if last is not None
        else None
    )
    now = job_store.db_now(session)
    active = job_store.active_job(session, kind=TRAIN_KIND)
    if active is not None:
        eligible, reason = False, f"train job {active.id} is already {active.status}"
    elif production is None:
        eligible, reason = False, "no production model to fine-tune"
    elif labels < min_labels:
        eligible = False
        reason = f"{labels} of {min_labels} reviewed frames since the last training"
    elif cooldown_until is not None and now < cooldown_until:
        eligible = False
        reason = f"cooling down until {cooldown_until.isoformat(timespec='seconds')}"
    else:
        eligible = True
        reason = f"{labels} reviewed frames since the last training (at least {min_labels})" + (
            " with a drift alarm on" if alarm else ""
        )
    return RetrainingStatus(
        eligible=eligible,
        reason=reason,
        labels_since_last_training=labels,
        min_labels=min_labels,
        drift_alarm=alarm,
        cooldown_until=cooldown_until,
        auto_promote=settings.retrain_auto_promote,
        last_job=last,
        since=since,
    )


def label_warning(status: RetrainingStatus) -> str | None:
    """What a person who queues a train job by hand should know when fewer labels than the
    policy's minimum arrived since the last training (None when enough did)."""
    labels, needed = status.labels_since_last_training, status.min_labels
    if labels >= needed:
        return None
    setting = (
        "VISIONLOOP_RETRAIN_DRIFT_MIN_LABELS"
        if status.drift_alarm
        else ("VISIONLOOP_RETRAIN_MIN_LABELS")
    )
    return (
        f"only {labels} reviewed frame{'s' if labels != 1 else ''} since the last training, "
        f"fewer than the policy's {needed} ({setting}): the candidate learns little from them, "
        "and its gate may have too few held-out images to promote it automatically"
    )


def queue_train(
    session: Session, *, settings: Settings, reason: str, created_by: str, trigger: str
) -> Job:
    """Queue a train job (ConflictError with ``job_id`` when one is queued or running)."""
    from visionloop.jobs.train import TRAIN

    params = TRAIN.validate({"reason": reason, "trigger": trigger})
    return job_store.enqueue(
        session,
        kind=TRAIN_KIND,
        params=params,
        created_by=created_by,
        max_attempts=settings.job_max_attempts,
    )
