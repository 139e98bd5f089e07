"""Drift monitoring: pin or unpin a device's reference, queue a check (admin); checks, their
Evidently HTML reports and per-device status (viewer). Checks themselves run in the worker."""

from __future__ import annotations

import re
import zlib
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from visionloop.errors import InvalidInputError, NotFoundError
from visionloop.monitoring.features import NUMERICAL_FEATURES, QUANTILES, quantiles
from visionloop.monitoring.jobs import queue_check
from visionloop.monitoring.report_html import report_script_hashes
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
    DriftFeaturesOut,
    DriftReferenceIn,
    DriftReferenceOut,
    FeatureDrift,
    FeaturePointOut,
    FeatureSeriesOut,
    check_window_time,
)
from visionloop.server.security_headers import CSP_HEADER, report_policy
from visionloop.server.store import devices as device_store
from visionloop.server.store import drift as drift_store
from visionloop.server.store.jobs import db_now
from visionloop.types import IsoDatetime

router = APIRouter(prefix="/drift", tags=["drift"])

MAX_PAGE = 500
CheckId = Annotated[int, Path(ge=1, le=2**63 - 1)]
REPORT_HEAD_BYTES = 4096
"""Bytes of a report read for its script policy (its first element, see report_html)."""
FEATURE_INTERVALS = 48
"""The features API splits its window into this many intervals."""
FEATURE_SAMPLE = 100
"""Frames read per interval (the first ones): the answer costs the same for any frame rate."""
WINDOW_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
WINDOW_MIN, WINDOW_MAX = timedelta(minutes=10), timedelta(days=30)


def parse_window(text: str) -> timedelta:
    """``"90m"``, ``"24h"``, ``"7d"`` as a timedelta within ``WINDOW_MIN``..``WINDOW_MAX``."""
    match = re.fullmatch(r"(\d{1,5})([mhd])", text)
    if match is None:
        raise InvalidInputError(f"window: expected e.g. 30m, 24h or 7d, got {text[:20]!r}")
    window = int(match.group(1)) * WINDOW_UNITS[match.group(2)]
    if not WINDOW_MIN <= window <= WINDOW_MAX:
        raise InvalidInputError("window: must be between 10m and 30d")
    return window


def check_out(check: DriftCheck) -> DriftCheckOut:
    return DriftCheckOut(
        id=check.id,
        device_id=check.device_id,
        job_id=check.job_id,
        checked_at=check.checked_at,
        reference_kind=check.reference_kind,
        reference_version=check.reference_version,
        reference_start=check.reference_start,
        reference_end=check.reference_end,
        reference_frames=check.reference_frames,
        window_start=check.window_start,
        window_end=check.window_end,
        window_frames=check.window_frames,
        reference_stride=check.reference_stride,
        window_stride=check.window_stride,
        features=[FeatureDrift.model_validate(f) for f in check.features],
        drifted_features=check.drifted_features,
        share_drifted=check.share_drifted,
        drifted=check.drifted,
        verdict=check.verdict,
        verdict_reason=check.verdict_reason,
        effective_frames=check.effective_frames,
        alarm_event=check.alarm_event,
        has_report=check.report_sha256 is not None,
        duration_s=check.duration_s,
    )


def reference_out(reference: DriftReference) -> DriftReferenceOut:
    return DriftReferenceOut.model_validate(reference, from_attributes=True)


@router.post(
    "/reference",
    response_model=DriftReferenceOut,
    summary="Pin a window of a device's frames as its drift reference (admin)",
    responses={404: {"description": "No device has that id"}},
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
    responses={404: {"description": "No device has that id"}},
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
    since: Annotated[IsoDatetime | None, Query(description="Checked at or after (aware).")] = None,
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
    """Served as stored, gzip-encoded (browsers and HTTP clients decode it), in a sandbox with
    an opaque origin that runs only the scripts the report lists by hash (none for a report
    older than that list): see ``server/security_headers.py``."""
    check = drift_store.get_check(session, check_id=check_id)
    if check.report_sha256 is None:
        raise NotFoundError(f"drift check {check_id} has no report")
    body = state.blobs.get(check.report_sha256)
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, REPORT_HEAD_BYTES)
    except zlib.error:
        head = b""
    hashes = report_script_hashes(head.decode("utf-8", errors="replace"))
    return Response(
        body,
        media_type="text/html",
        headers={"Content-Encoding": "gzip", CSP_HEADER: report_policy(hashes)},
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
        is_open = bool(s.alarm and s.alarm.is_open)
        counted = last is not None and last.verdict != drift_store.Verdict.INCONCLUSIVE
        out.append(
            DeviceDriftOut(
                device_id=s.device.id,
                device=s.device.name,
                state=drift_store.device_state(s),
                alarm=is_open,
                since=s.alarm.opened_at if s.alarm and is_open else None,
                closed_at=s.alarm.closed_at if s.alarm and not is_open else None,
                close_reason=s.alarm.close_reason if s.alarm and not is_open else None,
                last_check=check_out(last) if last else None,
                drifted_features=[f["feature"] for f in last.features if f.get("drifted")]
                if last and counted
                else [],
                reference=reference_out(reference) if reference else None,
            )
        )
    return out


@router.get(
    "/features",
    response_model=DriftFeaturesOut,
    summary="Each feature's percentiles over time beside its reference's (viewer)",
    responses={404: {"description": "No device has that id"}},
)
def drift_features(
    session: SessionDep,
    _user: CurrentUser,
    device_id: Annotated[int, Query(ge=1, le=2**31 - 1)],
    window: Annotated[
        str, Query(max_length=8, description="How far back: 30m, 6h, 24h, 7d (10m to 30d).")
    ] = "24h",
) -> DriftFeaturesOut:
    """The last ``window`` split into 48 intervals; per interval the percentiles of each
    numerical feature over a sample of its frames (the first 100, read by device and capture
    time: the cost does not grow with the frame rate), and the reference's percentiles as the
    device's latest check saw them."""
    span = parse_window(window)
    drift_store.get_device(session, device_id=device_id)
    until = db_now(session)
    interval = span / FEATURE_INTERVALS
    samples = drift_store.interval_samples(
        session,
        device_id=device_id,
        since=until - span,
        interval=interval,
        intervals=FEATURE_INTERVALS,
        per_interval=FEATURE_SAMPLE,
    )
    last = drift_store.last_check(session, device_id=device_id)
    reference = {f["feature"]: f.get("reference_quantiles") for f in last.features} if last else {}
    series = []
    for feature in NUMERICAL_FEATURES:
        points = []
        for sample in samples:
            values = sample.features.columns[feature]
            q = quantiles(values)
            if q is not None:
                points.append(FeaturePointOut(start=sample.start, frames=len(values), quantiles=q))
        series.append(
            FeatureSeriesOut(
                feature=feature, reference_quantiles=reference.get(feature), points=points
            )
        )
    return DriftFeaturesOut(
        device_id=device_id,
        since=until - span,
        until=until,
        interval_s=interval.total_seconds(),
        sample_size=FEATURE_SAMPLE,
        quantiles=list(QUANTILES),
        reference_kind=last.reference_kind if last else None,
        reference_check_id=last.id if last else None,
        features=series,
    )
