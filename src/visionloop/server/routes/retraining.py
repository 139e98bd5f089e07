"""Retraining: the policy's view now (viewer) and a person's trigger (admin)."""

from __future__ import annotations

from fastapi import APIRouter, status

from visionloop.server.deps import AdminUser, CurrentUser, SessionDep, StateDep, WriteSessionDep
from visionloop.server.retraining import label_warning, queue_train, retraining_status
from visionloop.server.routes.jobs import job_out
from visionloop.server.routes.models import CatalogDep
from visionloop.server.schemas import JobQueued, RetrainingStatusOut, RetrainingTrigger

router = APIRouter(tags=["retraining"])


@router.get(
    "/retraining/status",
    response_model=RetrainingStatusOut,
    summary="Would the retraining policy queue a train job now, and why",
)
def get_status(
    session: SessionDep, state: StateDep, catalog: CatalogDep, _user: CurrentUser
) -> RetrainingStatusOut:
    found = retraining_status(session, settings=state.settings, production=catalog.production())
    return RetrainingStatusOut(
        eligible=found.eligible,
        reason=found.reason,
        labels_since_last_training=found.labels_since_last_training,
        min_labels=found.min_labels,
        drift_alarm=found.drift_alarm,
        cooldown_until=found.cooldown_until,
        auto_promote=found.auto_promote,
        last_job=job_out(found.last_job) if found.last_job is not None else None,
    )


@router.post(
    "/retraining/trigger",
    response_model=JobQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a train job now (admin); 409 with its id when one is queued or running",
    responses={409: {"description": "A train job is already queued or running (job_id)"}},
)
def trigger(
    body: RetrainingTrigger,
    session: WriteSessionDep,
    state: StateDep,
    catalog: CatalogDep,
    admin: AdminUser,
) -> JobQueued:
    """Ignores the label threshold and the cooldown (a worker runs the job); ``warning`` says
    so when fewer labels than the policy's minimum arrived since the last training."""
    found = retraining_status(session, settings=state.settings, production=catalog.production())
    job = queue_train(
        session,
        settings=state.settings,
        reason=body.reason,
        created_by=admin.name,
        trigger="person",
    )
    return JobQueued(job_id=job.id, warning=label_warning(found))
