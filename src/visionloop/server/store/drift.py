"""Drift monitoring's tables: frame windows read as features, pinned references, checks and the
per-device alarm with its hysteresis.

Windows are read through ``ix_frames_device_id_captured_at`` (device, capture time) and their
detections through ``ix_detections_frame_pk``: a check reads its two windows, never the whole
table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, select
from sqlalchemy.orm import Session

from visionloop.errors import InvalidInputError, NotFoundError
from visionloop.monitoring.features import FeatureTable, window_features
from visionloop.server.models import (
    Detection,
    Device,
    DriftAlarm,
    DriftAlarmPeriod,
    DriftCheck,
    DriftReference,
    Frame,
)
from visionloop.server.store.jobs import db_now, decode_cursor

REFERENCE_MAX_FRAMES = 20_000
"""A pinned reference window is read as its newest this-many frames."""
_IN_CHUNK = 1000
MAX_ID = 2**63 - 1


class ReferenceKind(enum.StrEnum):
    MODEL = "model"
    """The reference profile of the model version that produced the device's latest frames."""
    PINNED = "pinned"
    """An admin pinned a window of the device's own frames."""
    INHERITED = "inherited"
    """The profile of an earlier production version, for a version without a usable one of its
    own (``reference_version`` names the version whose profile it is)."""
    AUTO = "auto"
    """The first window of frames the device sent with the model version it runs now (or, with
    none outside alarms, an earlier one: ``reference_version``), leaving out frames captured
    during its drift alarms, when no version in its line has a profile."""


class Verdict(enum.StrEnum):
    DRIFTED = "drifted"
    CLEAN = "clean"
    INCONCLUSIVE = "inconclusive"
    """Too few independent frames to judge: stored and shown, never counted by the alarm."""


@dataclass(frozen=True, slots=True)
class Window:
    """The features of a window of a device's frames and its capture-time span."""

    features: FeatureTable
    start: datetime
    end: datetime

    @property
    def frames(self) -> int:
        return len(self.features)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What a check did to its device's alarm: ``event`` is "opened", "closed" or None."""

    alarm: DriftAlarm
    event: str | None


def _read_window(session: Session, rows: list[Any]) -> Window | None:
    """Features of the frames ``rows`` (pk, captured_at, brightness, contrast, sharpness)."""
    if not rows:
        return None
    position = {r.pk: i for i, r in enumerate(rows)}
    box_frame: list[int] = []
    box_class: list[str] = []
    box_confidence: list[float] = []
    box_xyxyn: list[tuple[float, float, float, float]] = []
    pks = list(position)
    for i in range(0, len(pks), _IN_CHUNK):
        chunk = pks[i : i + _IN_CHUNK]
        # Core, not ORM, execution: the ORM's per-row loading was half of a 10,000-frame read.
        for frame_pk, class_name, confidence, x1, y1, x2, y2 in session.connection().execute(
            select(
                Detection.frame_pk,
                Detection.class_name,
                Detection.confidence,
                Detection.x1,
                Detection.y1,
                Detection.x2,
                Detection.y2,
            )
            .where(Detection.frame_pk.in_(chunk))
            .order_by(Detection.frame_pk, Detection.id)
        ):
            box_frame.append(position[frame_pk])
            box_class.append(class_name)
            box_confidence.append(confidence)
            box_xyxyn.append((x1, y1, x2, y2))
    table = window_features(
        brightness=[r.brightness for r in rows],
        contrast=[r.contrast for r in rows],
        sharpness=[r.sharpness for r in rows],
        box_frame=box_frame,
        box_class=box_class,
        box_confidence=box_confidence,
        box_xyxyn=box_xyxyn,
    )
    times = [r.captured_at for r in rows]
    return Window(features=table, start=min(times), end=max(times))


def _frames_query(device_id: int, *conditions: ColumnElement[bool]) -> Any:
    return select(
        Frame.pk, Frame.captured_at, Frame.brightness, Frame.contrast, Frame.sharpness
    ).where(Frame.device_id == device_id, *conditions)


def latest_window(
    session: Session,
    *,
    device_id: int,
    frames: int,
    after: datetime | None,
    model_version: str | None = None,
) -> Window | None:
    """The device's latest ``frames`` frames captured after ``after`` (None: any), of
    ``model_version`` (None: any), or None."""
    conditions = [Frame.captured_at > after] if after is not None else []
    if model_version is not None:
        conditions.append(Frame.model_version == model_version)
    rows = list(
        session.connection().execute(
            _frames_query(device_id, *conditions)
            .order_by(Frame.captured_at.desc(), Frame.pk.desc())
            .limit(frames)
        )
    )
    return _read_window(session, rows)


def pinned_window(session: Session, *, reference: DriftReference) -> Window | None:
    """The frames of a pinned reference (its newest ``REFERENCE_MAX_FRAMES``), or None."""
    rows = list(
        session.connection().execute(
            _frames_query(
                reference.device_id,
                Frame.captured_at >= reference.since,
                Frame.captured_at < reference.until,
            )
            .order_by(Frame.captured_at.desc(), Frame.pk.desc())
            .limit(REFERENCE_MAX_FRAMES)
        )
    )
    return _read_window(session, rows)


def current_version(session: Session, *, device_id: int) -> str | None:
    """The model version of the device's latest frame (None: no frame yet)."""
    return session.execute(
        select(Frame.model_version)
        .where(Frame.device_id == device_id)
        .order_by(Frame.captured_at.desc(), Frame.pk.desc())
        .limit(1)
    ).scalar_one_or_none()


def auto_window(
    session: Session, *, device_id: int, frames: int, version: str | None = None
) -> Window | None:
    """The first ``frames`` frames the device sent with ``version`` (None: the model version of
    its latest frame), leaving out every frame captured during one of its drift alarms (from
    the first drifted frames that opened it to its close; an open one to now): a reference
    drawn from them would accept the drift as normal."""
    version = version or current_version(session, device_id=device_id)
    if version is None:
        return None
    excluded = [
        and_(
            Frame.captured_at >= since,
            *([Frame.captured_at < until] if until is not None else []),
        )
        for since, until in alarm_periods(session, device_id=device_id)
    ]
    conditions = [Frame.model_version == version]
    if excluded:
        conditions.append(not_(or_(*excluded)))
    rows = list(
        session.connection().execute(
            _frames_query(device_id, *conditions)
            .order_by(Frame.captured_at, Frame.pk)
            .limit(frames)
        )
    )
    return _read_window(session, rows)


def alarm_periods(session: Session, *, device_id: int) -> list[tuple[datetime, datetime | None]]:
    """The device's drift alarms as ``(since, closed_at)`` capture-time spans, oldest first
    (``closed_at`` None: open)."""
    return [
        (p.since, p.closed_at)
        for p in session.scalars(
            select(DriftAlarmPeriod)
            .where(DriftAlarmPeriod.device_id == device_id)
            .order_by(DriftAlarmPeriod.since)
        )
    ]


# --- references -------------------------------------------------------------------------------


def get_device(session: Session, *, device_id: int) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFoundError(f"no device {device_id}")
    return device


def get_reference(session: Session, *, device_id: int) -> DriftReference | None:
    return session.get(DriftReference, device_id)


def pin_reference(
    session: Session, *, device_id: int, since: datetime, until: datetime, pinned_by: str
) -> DriftReference:
    """Pin ``[since, until)`` of the device's frames as its reference (replacing any pin)."""
    get_device(session, device_id=device_id)
    if since >= until:
        raise InvalidInputError("since must be before until")
    reference = session.get(DriftReference, device_id)
    now = db_now(session)
    if reference is None:
        reference = DriftReference(device_id=device_id)
        session.add(reference)
    reference.since, reference.until = since, until
    reference.pinned_by, reference.pinned_at = pinned_by, now
    session.flush()
    return reference


def unpin_reference(session: Session, *, device_id: int) -> None:
    """Back to the automatic reference; NotFoundError when nothing was pinned."""
    reference = session.get(DriftReference, device_id)
    if reference is None:
        raise NotFoundError(f"device {device_id} has no pinned reference")
    session.delete(reference)
    session.flush()


# --- checks ----------------------------------------------------------------------------------


def add_check(session: Session, check: DriftCheck) -> DriftCheck:
    if check.checked_at is None:
        check.checked_at = db_now(session)
    session.add(check)
    session.flush()
    return check


def last_check(session: Session, *, device_id: int) -> DriftCheck | None:
    """The device's latest check (None: never checked)."""
    return session.scalars(
        select(DriftCheck)
        .where(DriftCheck.device_id == device_id)
        .order_by(DriftCheck.id.desc())
        .limit(1)
    ).first()


def get_check(session: Session, *, check_id: int) -> DriftCheck:
    check = session.get(DriftCheck, check_id)
    if check is None:
        raise NotFoundError(f"no drift check {check_id}")
    return check


@dataclass(frozen=True, slots=True)
class CheckPage:
    checks: list[DriftCheck]
    next_cursor: str | None


def list_checks(
    session: Session,
    *,
    device_id: int | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> CheckPage:
    """Checks, newest first (keyset on id); follow ``next_cursor`` for the next page."""
    conditions: list[ColumnElement[bool]] = []
    if device_id is not None:
        conditions.append(DriftCheck.device_id == device_id)
    if since is not None:
        conditions.append(DriftCheck.checked_at >= since)
    if cursor is not None:
        after = decode_cursor(cursor)
        if after > MAX_ID:
            raise InvalidInputError("invalid cursor: pass back a next_cursor from this API")
        conditions.append(DriftCheck.id < after)
    checks = list(
        session.scalars(
            select(DriftCheck).where(*conditions).order_by(DriftCheck.id.desc()).limit(limit + 1)
        )
    )
    next_cursor = str(checks[limit - 1].id) if len(checks) > limit else None
    return CheckPage(checks=checks[:limit], next_cursor=next_cursor)


# --- alarms ----------------------------------------------------------------------------------


def record_verdict(session: Session, *, check: DriftCheck, consecutive: int) -> AlarmChange:
    """Update the device's alarm with one check: ``consecutive`` drifted checks in a row open
    it, as many clean ones in a row close it (with the reason, see ``close_reason``). An
    inconclusive check neither counts nor breaks a streak: the alarm stays as it was, and only
    its latest check moves. The row is locked (PostgreSQL) so that two checks of one device
    never count the same streak. An alarm's period (``DriftAlarmPeriod``) starts at the first
    frame of its streak's first drifted check."""
    alarm = session.execute(
        select(DriftAlarm).where(DriftAlarm.device_id == check.device_id).with_for_update()
    ).scalar_one_or_none()
    if alarm is None:
        alarm = DriftAlarm(
            device_id=check.device_id, is_open=False, drifted_streak=0, clean_streak=0
        )
        session.add(alarm)
    alarm.last_check_id, alarm.last_check_at = check.id, check.checked_at
    if check.verdict == Verdict.INCONCLUSIVE:
        session.flush()
        return AlarmChange(alarm=alarm, event=None)
    if check.drifted:
        if alarm.drifted_streak == 0:
            alarm.streak_since = check.window_start
        alarm.drifted_streak, alarm.clean_streak = alarm.drifted_streak + 1, 0
    else:
        alarm.drifted_streak, alarm.clean_streak = 0, alarm.clean_streak + 1
    event = None
    if not alarm.is_open and alarm.drifted_streak >= consecutive:
        alarm.is_open, alarm.opened_at, alarm.closed_at = True, check.checked_at, None
        alarm.close_reason = None
        session.add(
            DriftAlarmPeriod(
                device_id=check.device_id,
                since=alarm.streak_since or check.window_start,
                opened_at=check.checked_at,
                opened_check_id=check.id,
            )
        )
        event = "opened"
    elif alarm.is_open and alarm.clean_streak >= consecutive:
        period = open_period(session, device_id=check.device_id)
        opened = session.get(DriftCheck, period.opened_check_id) if period else None
        reason = close_reason(check, opened)
        alarm.is_open, alarm.closed_at, alarm.close_reason = False, check.checked_at, reason
        if period is not None:
            period.closed_at, period.closed_check_id = check.checked_at, check.id
            period.close_reason = reason
        event = "closed"
    check.alarm_event = event
    session.flush()
    return AlarmChange(alarm=alarm, event=event)


def open_period(session: Session, *, device_id: int) -> DriftAlarmPeriod | None:
    """The device's open alarm period (None: no alarm open)."""
    return session.scalars(
        select(DriftAlarmPeriod)
        .where(DriftAlarmPeriod.device_id == device_id, DriftAlarmPeriod.closed_at.is_(None))
        .order_by(DriftAlarmPeriod.id.desc())
        .limit(1)
    ).first()


def close_reason(closing: DriftCheck, opened: DriftCheck | None) -> str:
    """Why an alarm closed, in words, from the reference of the check that closed it against
    that of the check that opened it: a new version's own profile that matches the frames
    means it learned the conditions; a new pinned window, that an admin accepted them; the same
    reference, that the frames came back to it."""
    kind, version = closing.reference_kind, closing.reference_version
    same = opened is not None and (
        (opened.reference_kind, opened.reference_version) == (kind, version)
        and (kind != ReferenceKind.PINNED or opened.reference_start == closing.reference_start)
    )
    if kind == ReferenceKind.MODEL and not same:
        return f"version {version} learned these conditions: its own profile matches the frames"
    if kind == ReferenceKind.PINNED and not same:
        return "accepted as the new normal: the frames match the pinned window"
    if kind == ReferenceKind.MODEL:
        return f"the frames match version {version}'s profile again"
    if kind == ReferenceKind.INHERITED:
        return f"the frames match the inherited profile of version {version} again"
    return f"the frames match the {kind} reference again"


def alarm_open(session: Session, *, device_id: int) -> bool:
    """Whether the device's drift alarm is open."""
    is_open = session.execute(
        select(DriftAlarm.is_open).where(DriftAlarm.device_id == device_id)
    ).scalar_one_or_none()
    return bool(is_open)


def any_alarm_open(session: Session) -> bool:
    """Whether any device's drift alarm is open."""
    found = session.execute(
        select(DriftAlarm.device_id).where(DriftAlarm.is_open.is_(True)).limit(1)
    ).scalar_one_or_none()
    return found is not None


@dataclass(frozen=True, slots=True)
class DeviceDrift:
    """One device's drift status: its alarm and its latest check (None: never checked)."""

    device: Device
    alarm: DriftAlarm | None
    last_check: DriftCheck | None


def device_state(status: DeviceDrift) -> str:
    """One word for a device's drift (the dashboard and CLI word it the same everywhere):
    ``alarm``, ``drifted`` (the latest check drifted, the alarm not open yet),
    ``inconclusive``, ``clean`` or ``not_checked``."""
    if status.alarm is not None and status.alarm.is_open:
        return "alarm"
    if status.last_check is None:
        return "not_checked"
    return status.last_check.verdict


def statuses(session: Session) -> list[DeviceDrift]:
    """Every device's drift status, by name."""
    devices = list(session.scalars(select(Device).order_by(Device.name)))
    alarms = {a.device_id: a for a in session.scalars(select(DriftAlarm))}
    check_ids = [a.last_check_id for a in alarms.values() if a.last_check_id is not None]
    checks = {
        c.id: c
        for c in (
            session.scalars(select(DriftCheck).where(DriftCheck.id.in_(check_ids)))
            if check_ids
            else []
        )
    }
    out = []
    for d in devices:
        alarm = alarms.get(d.id)
        last = checks.get(alarm.last_check_id) if alarm and alarm.last_check_id else None
        out.append(DeviceDrift(device=d, alarm=alarm, last_check=last))
    return out


def active_device_ids(session: Session, *, seen_since: datetime) -> list[int]:
    """Enabled devices seen (ingest or heartbeat) since ``seen_since``."""
    return list(
        session.scalars(
            select(Device.id)
            .where(Device.disabled_at.is_(None), Device.last_seen_at >= seen_since)
            .order_by(Device.id)
        )
    )


# --- features over time ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntervalSample:
    """A sample of the frames captured in ``[start, start + interval)``: their features."""

    start: datetime
    features: FeatureTable


def interval_samples(
    session: Session,
    *,
    device_id: int,
    since: datetime,
    interval: timedelta,
    intervals: int,
    per_interval: int,
) -> list[IntervalSample]:
    """For each of ``intervals`` consecutive intervals from ``since``, the features of up to
    ``per_interval`` of the device's frames captured in it (the first ones), read through
    ``ix_frames_device_id_captured_at``: at most ``intervals * per_interval`` frames, however
    many the device sent. Intervals without frames are left out."""
    out = []
    for k in range(intervals):
        start = since + k * interval
        rows = list(
            session.connection().execute(
                _frames_query(
                    device_id, Frame.captured_at >= start, Frame.captured_at < start + interval
                )
                .order_by(Frame.captured_at, Frame.pk)
                .limit(per_interval)
            )
        )
        window = _read_window(session, rows)
        if window is not None:
            out.append(IntervalSample(start=start, features=window.features))
    return out
