"""Drift monitoring: pin or unpin a device's reference, queue a check (admin); checks, their
Evidently HTML reports and per-device status (viewer). Checks themselves run in the worker."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from visionloop.errors import InvalidInputError, NotFoundError
from visionloop.monitoring.jobs import queue_check
from visionloop.server.deps import (
    AdminUser,
    CurrentUser,
    DeviceIdPath,
    SessionDep,
    StateDep,
    WriteSessionDep,
)
from visionloop.server.models import DriftCheck, DriftReference
from visionloop.server.schemas import (
    DeviceDriftOut,
    DriftCheckOut,
    DriftCheckPageOut,
    DriftCheckQueued,
    DriftCheckRequest,
    DriftReferenceIn,
    DriftReferenceOut,
    FeatureDrift,
    check_window_time,
)
from visionloop.server.store import devices as device_store
from visionloop.server.store import drift as drift_store

router = APIRouter(prefix="/drift", tags=["drift"])

MAX_PAGE = 500
CheckId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def check_out(check: DriftCheck) -> DriftCheckOut:
    return DriftCheckOut(
        id=check.id,
        device_id=check.device_id,
        job_id=check.job_id,
        checked_at=check.checked_at,
        reference_kind=check.reference_kind,
        reference_start=check.reference_start,
        reference_end=check.reference_end,
        reference_frames=check.reference_frames,
        window_start=check.window_start,
        window_end=check.window_end,
        window_frames=check.window_frames,
        features=[FeatureDrift.model_validate(f) for f in check.features],
        drifted_features=check.drifted_features,
        share_drifted=check.share_drifted,
        drifted=check.drifted,
        has_report=check.report_sha256 is not None,
        duration_s=check.duration_s,
    )


def reference_out(reference: DriftReference) -> DriftReferenceOut:
    return DriftReferenceOut.model_validate(reference, from_attributes=True)


@router.post(
    "/reference",
    response_model=DriftReferenceOut,
    summary="Pin a window of a device's frames as its drift reference (admin)",
)
def pin_reference(
    body: DriftReferenceIn, session: WriteSessionDep, admin: AdminUser
) -> DriftReferenceOut:
    """ "This is the new normal": the device's frames captured in ``[since, until)`` become what
    its checks compare with, replacing its automatic reference (or an earlier pin)."""
    reference = drift_store.pin_reference(
        session, device_id=body.device_id, since=body.since, until=body.until, pinned_by=admin.name
    )
    return reference_out(reference)


@router.delete(
    "/reference/{device_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Unpin a device's reference (admin): back to the automatic one",
)
def unpin_reference(device_id: DeviceIdPath, session: WriteSessionDep, _admin: AdminUser) -> None:
    drift_store.unpin_reference(session, device_id=device_id)


@router.post(
    "/checks",
    response_model=DriftCheckQueued,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a drift check now (admin): one device, or every enabled one",
)
def queue_drift_check(
    body: DriftCheckRequest, session: WriteSessionDep, state: StateDep, admin: AdminUser
) -> DriftCheckQueued:
    if body.device_id is not None:
        drift_store.get_device(session, device_id=body.device_id)
        device_ids = [body.device_id]
    else:
        device_ids = [d.id for d in device_store.list_devices(session) if d.disabled_at is None]
    job_id = queue_check(
        session, settings=state.settings, device_ids=device_ids, created_by=admin.name
    )
    if job_id is None:
        raise NotFoundError("no enabled device to check")
    return DriftCheckQueued(job_id=job_id, device_ids=device_ids)


@router.get(
    "/checks", response_model=DriftCheckPageOut, summary="Drift checks, newest first (viewer)"
)
def list_checks(
    session: SessionDep,
    _user: CurrentUser,
    device_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[datetime | None, Query(description="Checked at or after (aware).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, description="next_cursor.")] = None,
) -> DriftCheckPageOut:
    if since is not None:
        try:
            check_window_time(since)
        except ValueError as exc:
            raise InvalidInputError(f"since: {exc}") from exc
    page = drift_store.list_checks(
        session, device_id=device_id, since=since, limit=limit, cursor=cursor
    )
    return DriftCheckPageOut(
        items=[check_out(c) for c in page.checks], next_cursor=page.next_cursor
    )


@router.get("/checks/{check_id}", response_model=DriftCheckOut, summary="One drift check")
def get_check(check_id: CheckId, session: SessionDep, _user: CurrentUser) -> DriftCheckOut:
    return check_out(drift_store.get_check(session, check_id=check_id))


@router.get(
    "/checks/{check_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
    summary="A drift check's Evidently HTML report",
)
def get_check_report(
    check_id: CheckId, session: SessionDep, state: StateDep, _user: CurrentUser
) -> Response:
    """Served as stored, gzip-encoded (browsers and HTTP clients decode it)."""
    check = drift_store.get_check(session, check_id=check_id)
    if check.report_sha256 is None:
        raise NotFoundError(f"drift check {check_id} has no report")
    return Response(
        state.blobs.get(check.report_sha256),
        media_type="text/html",
        headers={"Content-Encoding": "gzip"},
    )


@router.get(
    "/status",
    response_model=list[DeviceDriftOut],
    summary="Each device's drift alarm and latest check (viewer)",
)
def drift_status(session: SessionDep, _user: CurrentUser) -> list[DeviceDriftOut]:
    out = []
    for s in drift_store.statuses(session):
        last = s.last_check
        reference = drift_store.get_reference(session, device_id=s.device.id)
        out.append(
            DeviceDriftOut(
                device_id=s.device.id,
                device=s.device.name,
                alarm=bool(s.alarm and s.alarm.is_open),
                since=s.alarm.opened_at if s.alarm and s.alarm.is_open else None,
                last_check=check_out(last) if last else None,
                drifted_features=[f["feature"] for f in last.features if f.get("drifted")]
                if last
                else [],
                reference=reference_out(reference) if reference else None,
            )
        )
    return out
