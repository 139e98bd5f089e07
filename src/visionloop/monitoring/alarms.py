"""Drift alarms as the rest of visionloop sees them: whether one is open (for the retraining
policy and the heartbeat answer), and the webhook that tells people when one opens or closes.

The webhook is POSTed by an ``alert_webhook`` job, queued in the same transaction as the check
that moved the alarm, so a slow or absent receiver never delays a check; the job retries
``WEBHOOK_ATTEMPTS`` times with a growing pause. The job's params hold only the event: the URL
is a credential (it often carries a token) and job params are visible to every viewer, so the
job reads ``VISIONLOOP_ALERT_WEBHOOK_URL`` from its settings when it runs (issue 20, finding 2).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.orm import Session

from visionloop.config import Settings
from visionloop.errors import UnavailableError
from visionloop.jobs.kinds import JobContext, JobKind
from visionloop.server.models import DriftCheck
from visionloop.server.store import drift as drift_store
from visionloop.server.store import jobs as job_store

log = logging.getLogger(__name__)

WEBHOOK_ATTEMPTS = 5
WEBHOOK_TIMEOUT_S = 10.0
WEBHOOK_BACKOFF_S = 1.0


def any_open(session: Session) -> bool:
    """Whether any device's drift alarm is open (the retraining policy's ``drift_alarm``)."""
    return drift_store.any_alarm_open(session)


def device_open(session: Session, *, device_id: int) -> bool:
    """Whether ``device_id``'s drift alarm is open."""
    return drift_store.alarm_open(session, device_id=device_id)


class AlertParams(BaseModel):
    """The event to POST; where to is read from the settings when the job runs."""

    model_config = ConfigDict(extra="forbid")

    event: dict[str, Any] = Field(description="The JSON body to POST.")

    @model_validator(mode="before")
    @classmethod
    def _drop_url(cls, data: Any) -> Any:
        # Jobs queued by older versions carried the URL; it is never stored nor used again.
        if isinstance(data, dict) and "url" in data:
            return {k: v for k, v in data.items() if k != "url"}
        return data


def alert_event(check: DriftCheck, *, event: str, device_name: str) -> dict[str, Any]:
    """The webhook's JSON body for an alarm that ``check`` opened or closed."""
    return {
        "type": f"drift_alarm_{event}",
        "device_id": check.device_id,
        "device": device_name,
        "at": check.checked_at.isoformat(),
        "check_id": check.id,
        "share_drifted": check.share_drifted,
        "drifted_features": [f["feature"] for f in check.features if f.get("drifted")],
    }


def queue_alert(session: Session, *, settings: Settings, check: DriftCheck, event: str) -> None:
    """Queue the webhook job for an alarm event (nothing when no webhook is configured)."""
    if not settings.alert_webhook_url:
        return
    device = drift_store.get_device(session, device_id=check.device_id)
    job_store.enqueue(
        session,
        kind=ALERT_WEBHOOK.name,
        params=ALERT_WEBHOOK.validate(
            {"event": alert_event(check, event=event, device_name=device.name)}
        ),
        created_by="drift",
        max_attempts=settings.job_max_attempts,
    )


class _HideUrl(logging.Filter):
    """Drops log records that name ``url`` (httpx logs each request's URL at INFO, and a job's
    log is visible to viewers)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        return self.url not in record.getMessage()


def run_alert(params: AlertParams, ctx: JobContext) -> dict[str, Any]:
    url = ctx.settings.alert_webhook_url
    if not url:
        return {"skipped": "VISIONLOOP_ALERT_WEBHOOK_URL is not set (it was when queued)"}
    hide = _HideUrl(url)
    httpx_log = logging.getLogger("httpx")
    httpx_log.addFilter(hide)
    try:
        return _post(url, params.event, ctx)
    finally:
        httpx_log.removeFilter(hide)


def _post(url: str, event: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    import httpx

    error = ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            resp = httpx.post(url, json=event, timeout=WEBHOOK_TIMEOUT_S)
        except httpx.HTTPError as exc:
            # The job's log and error are visible to viewers: never the URL itself.
            error = f"{type(exc).__name__}: {exc}".replace(url, "<the webhook URL>")
        else:
            if resp.status_code < 300:
                return {"status_code": resp.status_code, "attempts": attempt}
            error = f"answered {resp.status_code}"
        log.warning("webhook attempt %d of %d failed: %s", attempt, WEBHOOK_ATTEMPTS, error)
        ctx.progress(attempt / WEBHOOK_ATTEMPTS, f"attempt {attempt} failed")
        if attempt < WEBHOOK_ATTEMPTS:
            time.sleep(WEBHOOK_BACKOFF_S * 2 ** (attempt - 1))
    raise UnavailableError(f"the webhook failed {WEBHOOK_ATTEMPTS} times; last: {error}")


ALERT_WEBHOOK = JobKind(
    name="alert_webhook",
    params=AlertParams,
    run=run_alert,
    description="POST a drift alarm event to VISIONLOOP_ALERT_WEBHOOK_URL (retried).",
)
