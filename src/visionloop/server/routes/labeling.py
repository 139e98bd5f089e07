"""Labeling: the review queue (lease, release, skip, submit, reopen), manual tasks, its
statistics, and the class list reviewers label with."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from visionloop.errors import UnavailableError, VisionloopError
from visionloop.server.deps import (
    AdminUser,
    CurrentUser,
    ReviewerUser,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from visionloop.server.model_catalog import ModelCatalog, model_catalog
from visionloop.server.schemas import (
    ClassCreate,
    ClassLabels,
    ClassOut,
    DeviceQueueOut,
    LabelingStatsOut,
    LeasedTaskOut,
    LeaseOut,
    ManualTaskCreate,
    PredictionOut,
    ProductionLabels,
    SkipRequest,
    SubmissionOut,
    SubmitRequest,
    TaskCounts,
    TaskOut,
    VersionReviewOut,
)
from visionloop.server.state import ServerState
from visionloop.server.store import labeling as store

log = logging.getLogger(__name__)

router = APIRouter(tags=["labeling"])

CatalogDep = Annotated[ModelCatalog, Depends(model_catalog)]
TaskId = Annotated[int, Path(ge=1, le=2**63 - 1, description="A labeling task's id.")]


@dataclass(frozen=True, slots=True)
class ProductionInfo:
    version: str
    registered_at: datetime
    class_names: list[str]


def _production(catalog: ModelCatalog, *, wait: bool = False) -> ProductionInfo | None:
    """The production version, its registration time and class names; None when there is none
    or the registry cannot be reached, or is still starting and ``wait`` is False (labeling goes
    on without it)."""
    try:
        version = catalog.production(wait=wait)
    except VisionloopError as exc:
        if catalog.warming:
            log.info("labeling: no production model information yet: %s", exc)
        else:
            log.warning("labeling: no production model information: %s", exc)
        return None
    if version is None:
        return None
    names = [n for n in version.tags.get("classes", "").split(",") if n]
    return ProductionInfo(version.version, version.created_at, names)


def classes_ready(request: Request, state: StateDep, _user: CurrentUser) -> None:
    """Seed an empty class list with the production model's class names (first use only).

    A route dependency, so it runs (and releases the write lock) before the handler's own
    session opens; after the caller is authenticated, so strangers never trigger it. While the
    server is still opening the model registry (the first seconds after it starts) it does not
    wait: an empty class list is then a 503 with ``Retry-After``, so that no reviewer labels a
    frame with no classes to choose from, and a later request seeds them."""
    _seed_classes(request, state, wait=False)


def classes_settled(request: Request, state: StateDep, _user: CurrentUser) -> None:
    """``classes_ready`` that waits for the registry: an admin's new class must come after the
    production model's, whose ids are the model's class ids."""
    _seed_classes(request, state, wait=True)


def _seed_classes(request: Request, state: ServerState, *, wait: bool) -> None:
    if state.label_classes_ready.is_set():
        return
    with state.read_sessions() as session:
        if store.has_classes(session):
            state.label_classes_ready.set()
            return
    catalog = model_catalog(request)
    warming = catalog.warming  # read first: the warm-up may end during the call below
    production = _production(catalog, wait=wait)
    if production is None and warming:
        raise UnavailableError(
            "the class list comes from the production model, which the server is still "
            "loading; retry in a few seconds"
        )
    if production is None or not production.class_names:
        return
    with state.write_lock(), state.write_sessions() as session, session.begin():
        added = store.seed_classes(session, names=production.class_names)
    if added:
        log.info("labeling: %d classes from production model %s", added, production.version)


ClassesReady = Depends(classes_ready)
ClassesSettled = Depends(classes_settled)


def _task_out(task: store.TaskSummary) -> TaskOut:
    return TaskOut(
        id=task.id,
        frame_id=task.frame_id,
        reason=task.reason,
        status=task.status,
        priority=task.priority,
        note=task.note,
        created_at=task.created_at,
        lease_expires_at=task.lease_expires_at,
    )


def _classes(session: SessionDep | WriteSessionDep) -> list[ClassOut]:
    return [ClassOut(id=cid, name=name) for cid, name in store.list_classes(session)]


@router.get(
    "/classes",
    response_model=list[ClassOut],
    dependencies=[ClassesReady],
    summary="The classes reviewers label with (id = YOLO class id)",
    responses={
        503: {"description": "The server is still loading the production model's classes"},
    },
)
def list_classes(session: SessionDep, _user: CurrentUser) -> list[ClassOut]:
    """Starts as the production model's class names; admins add classes."""
    return _classes(session)


@router.post(
    "/classes",
    response_model=ClassOut,
    status_code=201,
    dependencies=[ClassesSettled],
    summary="Add a class (a new defect type); usable at once",
    responses={409: {"description": "A class with that name exists"}},
)
def add_class(body: ClassCreate, session: WriteSessionDep, _user: AdminUser) -> ClassOut:
    cid, name = store.add_class(session, name=body.name)
    return ClassOut(id=cid, name=name)


@router.post(
    "/labeling/tasks",
    response_model=TaskOut,
    status_code=201,
    summary="Send a frame to review, ahead of the automatic tasks",
    responses={
        200: {"description": "The frame already had an open task: that task"},
        404: {"description": "No frame has that id"},
    },
)
def create_task(
    body: ManualTaskCreate,
    response: Response,
    session: WriteSessionDep,
    state: StateDep,
    user: ReviewerUser,
) -> TaskOut:
    task, created = store.create_manual_task(
        session,
        frame_id=body.frame_id,
        note=body.note,
        user_id=user.id,
        hygiene=store.QueueHygiene.from_settings(state.settings),
    )
    if not created:
        response.status_code = 200
    return _task_out(task)


@router.post(
    "/labeling/next",
    response_model=LeaseOut,
    dependencies=[ClassesReady],
    summary="Lease the next task to label",
    responses={
        204: {"description": "Nothing to label"},
        503: {"description": "The server is still loading the production model's classes"},
    },
)
def lease_next(
    session: WriteSessionDep, state: StateDep, user: ReviewerUser
) -> LeaseOut | Response:
    """The highest-priority open task is leased to the caller for
    ``VISIONLOOP_LABELING_LEASE_SECONDS``; nobody else gets it meanwhile."""
    settings = state.settings
    task = store.lease_next(
        session,
        user_id=user.id,
        lease_seconds=settings.labeling_lease_seconds,
        audit_share=settings.labeling_audit_share,
    )
    if task is None:
        return Response(status_code=204)
    return LeaseOut(
        task=LeasedTaskOut(
            id=task.id,
            frame_id=task.frame_id,
            reason=task.reason,
            priority=task.priority,
            lease_expires_at=task.lease_expires_at,
            image_url=f"/api/v1/frames/{task.frame_id}/image" if task.has_image else None,
            width=task.width,
            height=task.height,
            model_version=task.model_version,
            predictions=[
                PredictionOut(
                    class_id=p.class_id,
                    class_name=p.class_name,
                    confidence=p.confidence,
                    xyxyn=p.xyxyn,
                )
                for p in task.predictions
            ],
        ),
        classes=_classes(session),
    )


@router.post(
    "/labeling/tasks/{task_id}/release",
    status_code=204,
    summary="Give a leased task back, unlabeled",
    responses={409: {"description": "Not leased to you"}},
)
def release_task(task_id: TaskId, session: WriteSessionDep, user: ReviewerUser) -> None:
    store.release(session, task_id=task_id, user_id=user.id)


@router.post(
    "/labeling/tasks/{task_id}/skip",
    status_code=204,
    summary="Take a leased task out of the queue without labels",
    responses={409: {"description": "Not leased to you"}},
)
def skip_task(
    task_id: TaskId, body: SkipRequest, session: WriteSessionDep, user: ReviewerUser
) -> None:
    store.skip(session, task_id=task_id, user_id=user.id, reason=body.reason)


@router.post(
    "/labeling/tasks/{task_id}/submit",
    response_model=SubmissionOut,
    summary="Submit the labels of a task you lease ([] = nothing to label)",
    responses={409: {"description": "Not leased to you (the lease was lost)"}},
)
def submit_task(
    task_id: TaskId, body: SubmitRequest, session: WriteSessionDep, user: ReviewerUser
) -> SubmissionOut:
    result = store.submit(
        session,
        task_id=task_id,
        user_id=user.id,
        labels=[
            store.SubmittedLabel(class_id=lab.class_id, xyxyn=lab.xyxyn) for lab in body.labels
        ],
    )
    return SubmissionOut(
        id=result.id,
        task_id=result.task_id,
        frame_id=result.frame_id,
        model_version=result.model_version,
        tp=result.tp,
        fp=result.fp,
        fn=result.fn,
        seconds_open=result.seconds_open,
    )


@router.post(
    "/labeling/tasks/{task_id}/reopen",
    response_model=TaskOut,
    summary="Put a done or skipped task back in the queue",
    responses={409: {"description": "The task is not done, or its frame has an open task"}},
)
def reopen_task(task_id: TaskId, session: WriteSessionDep, _user: AdminUser) -> TaskOut:
    return _task_out(store.reopen(session, task_id=task_id))


def _counts(raw: dict[str, int]) -> TaskCounts:
    return TaskCounts(
        open=raw.get("open", 0),
        leased=raw.get("leased", 0),
        done=raw.get("done", 0),
        skipped=raw.get("skipped", 0),
        expired=raw.get("expired", 0),
    )


@router.get(
    "/labeling/stats",
    response_model=LabelingStatsOut,
    summary="The queue, the labels, and what reviews say about each model version",
)
def labeling_stats(
    session: SessionDep, catalog: CatalogDep, _user: CurrentUser
) -> LabelingStatsOut:
    production = _production(catalog)
    since = production.registered_at if production is not None else None
    stats = store.labeling_stats(session, since=since)
    totals: dict[str, int] = {}
    for counts in stats.tasks.values():
        for key, n in counts.items():
            totals[key] = totals.get(key, 0) + n
    return LabelingStatsOut(
        tasks={reason: _counts(c) for reason, c in stats.tasks.items()},
        totals=_counts(totals),
        reviewed_frames=stats.reviewed_frames,
        labels_per_class=[
            ClassLabels(class_id=cid, class_name=name, labels=n)
            for cid, name, n in stats.labels_per_class
        ],
        since_production=(
            ProductionLabels(
                version=production.version,
                registered_at=production.registered_at,
                reviewed_frames=stats.frames_since or 0,
                labels=stats.labels_since or 0,
            )
            if production is not None
            else None
        ),
        devices=[
            DeviceQueueOut(
                device_id=d.device_id, open=d.open, expired=d.expired, duplicates=d.duplicates
            )
            for d in stats.devices
        ],
        duplicates_suppressed=sum(d.duplicates for d in stats.devices),
        versions=[
            VersionReviewOut(
                model_version=v.model_version,
                reviewed_frames=v.frames,
                tp=v.tp,
                fp=v.fp,
                fn=v.fn,
                precision=v.precision,
                audit_frames=v.audit_frames,
                audit_objects=v.audit_objects,
                audit_misses=v.audit_misses,
                miss_rate=v.miss_rate,
                miss_rate_ci95=(
                    (v.miss_rate_low, v.miss_rate_high)
                    if v.miss_rate_low is not None and v.miss_rate_high is not None
                    else None
                ),
            )
            for v in stats.versions
        ],
    )
