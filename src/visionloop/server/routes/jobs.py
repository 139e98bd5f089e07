"""Jobs: queue one (admin), list, one job with its log tail, its whole log, cancel (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse

from visionloop.server.deps import (
    AdminUser,
    CurrentUser,
    JobIdPath,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from visionloop.server.models import Job
from visionloop.server.schemas import JobCreate, JobDetail, JobOut, JobPageOut
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import JobStatus

router = APIRouter(tags=["jobs"])

MAX_PAGE = 500


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


def job_detail(job: Job) -> JobDetail:
    return JobDetail.model_validate(job, from_attributes=True)


@router.post(
    "/jobs",
    response_model=JobDetail,
    status_code=status.HTTP_201_CREATED,
    summary="Queue a job (admin); its params are checked against its kind",
)
def create_job(
    body: JobCreate, session: WriteSessionDep, state: StateDep, admin: AdminUser
) -> JobDetail:
    kind = state.job_kinds.kind(body.kind)
    job = job_store.enqueue(
        session,
        kind=kind.name,
        params=kind.validate(body.params),
        created_by=admin.name,
        max_attempts=body.max_attempts or state.settings.job_max_attempts,
    )
    return job_detail(job)


@router.get("/jobs", response_model=JobPageOut, summary="List jobs, newest first")
def list_jobs(
    session: SessionDep,
    _user: CurrentUser,
    kind: Annotated[str | None, Query(max_length=64, description="Only this kind.")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=20, description="next_cursor of the last page.")
    ] = None,
) -> JobPageOut:
    page = job_store.list_jobs(session, kind=kind, status=status, limit=limit, cursor=cursor)
    return JobPageOut(items=[job_out(j) for j in page.jobs], next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", response_model=JobDetail, summary="One job, with its log tail")
def get_job(job_id: JobIdPath, session: SessionDep, _user: CurrentUser) -> JobDetail:
    return job_detail(job_store.get_job(session, job_id=job_id))


@router.get(
    "/jobs/{job_id}/log",
    response_class=PlainTextResponse,
    summary="A job's whole log (text/plain)",
)
def get_job_log(job_id: JobIdPath, session: SessionDep, _user: CurrentUser) -> PlainTextResponse:
    return PlainTextResponse(job_store.job_log(session, job_id=job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobDetail,
    summary="Cancel a job (admin): a queued one never starts, a running one is stopped",
)
def cancel_job(job_id: JobIdPath, session: WriteSessionDep, _admin: AdminUser) -> JobDetail:
    """A queued job is ``cancelled`` at once. A running one gets ``cancel_requested``; its worker
    stops its process within seconds and marks it ``cancelled``. A finished job: 409."""
    return job_detail(job_store.request_cancel(session, job_id=job_id))
