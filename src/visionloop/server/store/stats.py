"""Aggregates for the dashboard: counts per class, per device and a confidence histogram over a
time window (by ``captured_at``), plus all-time totals.

Every windowed query reads a covering index (``ix_detections_captured_at`` or
``ix_frames_device_id_captured_at``), so its cost grows with the rows inside the window, not with
the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, cast, distinct, func, select
from sqlalchemy.orm import Session

from visionloop.server.models import Detection, Device, Frame

HISTOGRAM_BINS = 10


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


def _bucket(session: Session) -> ColumnElement[int]:
    scaled = Detection.confidence * HISTOGRAM_BINS
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(scaled), Integer)
    return cast(scaled, Integer)  # SQLite truncates toward zero: floor for values >= 0


def summary(session: Session, *, since: datetime, until: datetime) -> Summary:
    """Aggregates over frames captured in ``[since, until)`` and the all-time totals."""
    in_window_det = (Detection.captured_at >= since, Detection.captured_at < until)
    in_window_frame = (Frame.captured_at >= since, Frame.captured_at < until)

    per_class: dict[str, ClassCounts] = {}
    histogram = [0] * HISTOGRAM_BINS
    bucket = _bucket(session).label("bucket")
    for name, b, n in session.execute(
        select(Detection.class_name, bucket, func.count())
        .where(*in_window_det)
        .group_by(Detection.class_name, bucket)
    ):
        per_class.setdefault(name, ClassCounts(name)).detections += n
        histogram[min(max(int(b), 0), HISTOGRAM_BINS - 1)] += n
    for name, n in session.execute(
        select(Detection.class_name, func.count(distinct(Detection.frame_pk)))
        .where(*in_window_det)
        .group_by(Detection.class_name)
    ):
        per_class.setdefault(name, ClassCounts(name)).frames = n

    frame_counts = {
        device_id: (n, dets or 0)
        for device_id, n, dets in session.execute(
            select(Frame.device_id, func.count(), func.sum(Frame.detection_count))
            .where(*in_window_frame)
            .group_by(Frame.device_id)
        )
    }
    per_device = [
        DeviceCounts(
            device_id=d.id,
            name=d.name,
            frames=frame_counts.get(d.id, (0, 0))[0],
            detections=frame_counts.get(d.id, (0, 0))[1],
            last_seen_at=d.last_seen_at,
        )
        for d in session.execute(
            select(Device.id, Device.name, Device.last_seen_at).order_by(Device.name)
        )
    ]
    frames_total = session.scalar(select(func.count()).select_from(Frame)) or 0
    detections_total = session.scalar(select(func.count()).select_from(Detection)) or 0
    return Summary(
        frames=sum(n for n, _ in frame_counts.values()),
        detections=sum(c.detections for c in per_class.values()),
        per_class=sorted(per_class.values(), key=lambda c: (-c.detections, c.class_name)),
        per_device=per_device,
        histogram_counts=histogram,
        frames_total=frames_total,
        detections_total=detections_total,
    )
