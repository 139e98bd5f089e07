"""Aggregates for the dashboard: counts per class and device and a confidence histogram over a
time window (by ``captured_at``), plus all-time totals.

Whole hours inside the window are read from the hourly rollups that ingest maintains
(``frame_rollups``, ``class_rollups``); only the partial hours at either end are aggregated from
the frames and detections themselves (through covering indexes). So a summary costs a few rows
per hour of window plus at most two hours of raw rows, however much data is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Integer, cast, distinct, func, select
from sqlalchemy.orm import Session

from visionloop.server.models import (
    HISTOGRAM_BINS,
    ClassRollup,
    Detection,
    Device,
    Frame,
    FrameRollup,
)
from visionloop.server.store import rollups

__all__ = [
    "HISTOGRAM_BINS",
    "HOUR_S",
    "MINUTE_S",
    "ClassCounts",
    "DeviceCounts",
    "RatePoint",
    "Summary",
    "rate_series",
    "rebuild_rollups",
    "summary",
]

_HOUR = timedelta(hours=1)


@dataclass(slots=True)
class ClassCounts:
    class_name: str
    frames: int = 0
    detections: int = 0


@dataclass(slots=True)
class DeviceCounts:
    device_id: int
    name: str
    frames: int
    detections: int
    last_seen_at: datetime | None


@dataclass(slots=True)
class Summary:
    frames: int
    detections: int
    per_class: list[ClassCounts]
    per_device: list[DeviceCounts]
    # counts[i] holds detections with confidence in [i/bins, (i+1)/bins); 1.0 falls in the last.
    histogram_counts: list[int] = field(default_factory=list)
    frames_total: int = 0
    detections_total: int = 0


@dataclass(slots=True)
class _Partial:
    per_class: dict[str, ClassCounts] = field(default_factory=dict)
    per_device: dict[int, list[int]] = field(default_factory=dict)  # device -> [frames, dets]
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)

    def add_class(self, name: str, frames: int, detections: int) -> None:
        c = self.per_class.setdefault(name, ClassCounts(name))
        c.frames += frames
        c.detections += detections

    def add_device(self, device_id: int, frames: int, detections: int) -> None:
        d = self.per_device.setdefault(device_id, [0, 0])
        d[0] += frames
        d[1] += detections


def _bucket(session: Session) -> ColumnElement[int]:
    scaled = Detection.confidence * HISTOGRAM_BINS
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(scaled), Integer)
    return cast(scaled, Integer)  # SQLite truncates toward zero: floor for values >= 0


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _exact(session: Session, out: _Partial, since: datetime, until: datetime) -> None:
    """Aggregate ``[since, until)`` from the raw tables into ``out``."""
    if since >= until:
        return
    in_det = (Detection.captured_at >= since, Detection.captured_at < until)
    bucket = _bucket(session).label("bucket")
    for name, b, n in session.execute(
        select(Detection.class_name, bucket, func.count())
        .where(*in_det)
        .group_by(Detection.class_name, bucket)
    ):
        out.add_class(name, 0, n)
        out.histogram[min(max(int(b), 0), HISTOGRAM_BINS - 1)] += n
    for name, n in session.execute(
        select(Detection.class_name, func.count(distinct(Detection.frame_pk)))
        .where(*in_det)
        .group_by(Detection.class_name)
    ):
        out.add_class(name, n, 0)
    for device_id, n, dets in session.execute(
        select(Frame.device_id, func.count(), func.sum(Frame.detection_count))
        .where(Frame.captured_at >= since, Frame.captured_at < until)
        .group_by(Frame.device_id)
    ):
        out.add_device(device_id, n, dets or 0)


def _rolled(session: Session, out: _Partial, first_hour: datetime, end_hour: datetime) -> None:
    """Add the rollups of the whole hours ``[first_hour, end_hour)`` into ``out``."""
    if first_hour >= end_hour:
        return
    conf = [func.sum(getattr(ClassRollup, f"conf_{k}")) for k in range(HISTOGRAM_BINS)]
    for name, frames, dets, *bins in session.execute(
        select(
            ClassRollup.class_name,
            func.sum(ClassRollup.frames),
            func.sum(ClassRollup.detections),
            *conf,
        )
        .where(ClassRollup.hour >= first_hour, ClassRollup.hour < end_hour)
        .group_by(ClassRollup.class_name)
    ):
        out.add_class(name, int(frames), int(dets))
        for k, n in enumerate(bins):
            out.histogram[k] += int(n)
    for device_id, frames, dets in session.execute(
        select(
            FrameRollup.device_id, func.sum(FrameRollup.frames), func.sum(FrameRollup.detections)
        )
        .where(FrameRollup.hour >= first_hour, FrameRollup.hour < end_hour)
        .group_by(FrameRollup.device_id)
    ):
        out.add_device(device_id, int(frames), int(dets))


def summary(session: Session, *, since: datetime, until: datetime) -> Summary:
    """Aggregates over frames captured in ``[since, until)`` and the all-time totals."""
    acc = _Partial()
    first_hour = _floor_hour(since)
    if first_hour < since:
        first_hour += _HOUR
    end_hour = _floor_hour(until)
    if first_hour < end_hour:
        _exact(session, acc, since, first_hour)
        _rolled(session, acc, first_hour, end_hour)
        _exact(session, acc, end_hour, until)
    else:
        _exact(session, acc, since, until)

    per_device = [
        DeviceCounts(
            device_id=d.id,
            name=d.name,
            frames=acc.per_device.get(d.id, [0, 0])[0],
            detections=acc.per_device.get(d.id, [0, 0])[1],
            last_seen_at=d.last_seen_at,
        )
        for d in session.execute(
            select(Device.id, Device.name, Device.last_seen_at).order_by(Device.name)
        )
    ]
    frames_total, detections_total = session.execute(
        select(
            func.coalesce(func.sum(FrameRollup.frames), 0),
            func.coalesce(func.sum(FrameRollup.detections), 0),
        )
    ).one()
    return Summary(
        frames=sum(f for f, _ in acc.per_device.values()),
        detections=sum(c.detections for c in acc.per_class.values()),
        per_class=sorted(acc.per_class.values(), key=lambda c: (-c.detections, c.class_name)),
        per_device=per_device,
        histogram_counts=acc.histogram,
        frames_total=int(frames_total),
        detections_total=int(detections_total),
    )


@dataclass(slots=True)
class RatePoint:
    """Frames and detections captured in ``[start, start + bucket)``."""

    start: datetime
    frames: int
    detections: int


MINUTE_S = 60
HOUR_S = 3600


def _per_minute(session: Session, start: datetime, end: datetime) -> dict[int, tuple[int, int]]:
    """Frames and detections per minute (minutes since the epoch) captured in ``[start, end)``.

    Read through the covering index ``(device_id, captured_at, pk, detection_count)`` (hence the
    device filter): about a microsecond a frame, so keep the window short (an hour).
    """
    devices = Frame.device_id.in_(select(Device.id))
    in_window = (devices, Frame.captured_at >= start, Frame.captured_at < end)
    out: dict[int, tuple[int, int]] = {}
    if session.get_bind().dialect.name == "postgresql":
        minute: ColumnElement[Any] = cast(
            func.floor(func.extract("epoch", Frame.captured_at) / MINUTE_S), BigInteger
        )
    else:
        # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': its first 16 characters name the
        # minute (cheaper than strftime on every row).
        minute = func.substr(Frame.captured_at, 1, 16)
    label = minute.label("minute")
    for key, frames, dets in session.execute(
        select(label, func.count(), func.sum(Frame.detection_count))
        .where(*in_window)
        .group_by(label)
    ):
        if isinstance(key, str):
            ts = datetime.strptime(key, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            key = int(ts.timestamp()) // MINUTE_S
        out[int(key)] = (int(frames), int(dets or 0))
    return out


def _per_hour(session: Session, start: datetime, end: datetime) -> dict[int, tuple[int, int]]:
    """Frames and detections per hour (hours since the epoch) from the hourly rollups."""
    out: dict[int, tuple[int, int]] = {}
    for hour, frames, dets in session.execute(
        select(FrameRollup.hour, func.sum(FrameRollup.frames), func.sum(FrameRollup.detections))
        .where(FrameRollup.hour >= start, FrameRollup.hour < end)
        .group_by(FrameRollup.hour)
    ):
        out[int(hour.timestamp()) // HOUR_S] = (int(frames), int(dets or 0))
    return out


def rate_series(
    session: Session, *, since: datetime, until: datetime, bucket_s: int
) -> list[RatePoint]:
    """Frames and detections per bucket (``MINUTE_S`` or ``HOUR_S``, aligned to the epoch) from
    the bucket that holds ``since`` to the one that holds ``until``, every bucket present (zeros
    included).

    Hour buckets read the hourly rollups (a row per hour and device), whatever the window;
    minute buckets read the frames themselves, so keep their window short (an hour).
    """
    if bucket_s not in (MINUTE_S, HOUR_S):
        raise ValueError(f"bucket_s must be {MINUTE_S} or {HOUR_S}, got {bucket_s}")
    first = int(since.timestamp()) // bucket_s
    last = int(until.timestamp()) // bucket_s
    start = datetime.fromtimestamp(first * bucket_s, UTC)
    end = datetime.fromtimestamp((last + 1) * bucket_s, UTC)
    read = _per_hour if bucket_s == HOUR_S else _per_minute
    counts = read(session, start, end)
    return [
        RatePoint(
            start=datetime.fromtimestamp(k * bucket_s, UTC),
            frames=counts.get(k, (0, 0))[0],
            detections=counts.get(k, (0, 0))[1],
        )
        for k in range(first, last + 1)
    ]


def rebuild_rollups(connection: Connection) -> None:
    """Recompute both rollup tables from the frames and detections (after rows were loaded or
    deleted behind ingest's back). Runs in the caller's transaction."""
    dialect = connection.dialect.name
    connection.exec_driver_sql("DELETE FROM frame_rollups")
    connection.exec_driver_sql("DELETE FROM class_rollups")
    connection.exec_driver_sql(rollups.add_frames_sql(dialect, "1 = 1"))
    connection.exec_driver_sql(rollups.add_detections_sql(dialect, "1 = 1"))
