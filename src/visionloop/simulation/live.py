"""Live accuracy: mAP50 of what the edge agent actually detected (the detections it reported,
at its own confidence threshold) against the line's ground truth, over a sliding window of
frames, read from the server's database after the run."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.server.models import Detection, Frame
from visionloop.simulation.truth import LineTruth
from visionloop.training.evaluate import ScoredImage, map50_of
from visionloop.vision.synthetic.defects import CLASS_NAMES


@dataclass(frozen=True)
class FrameSeen:
    """One frame the edge reported: its number on the line, when, and which model ran it."""

    index: int
    captured_at: datetime
    model_version: str


@dataclass(frozen=True)
class LivePoint:
    """mAP50 of the window of frames ``[start, end)`` (None: no true box in it)."""

    start: int
    end: int
    map50: float | None


def frames_seen(session: Session) -> list[FrameSeen]:
    """Every numbered frame in the database, in line order."""
    rows = session.execute(
        select(Frame.source_index, Frame.captured_at, Frame.model_version)
        .where(Frame.source_index.is_not(None))
        .order_by(Frame.source_index)
    ).all()
    return [FrameSeen(i, t, v) for i, t, v in rows if i is not None]


def live_map50(
    session: Session, truth: LineTruth, *, window: int, stride: int, until: int
) -> list[LivePoint]:
    """mAP50 over windows of ``window`` frames, every ``window // 2`` frames, up to frame
    ``until``; each window scores its frames whose index is a multiple of ``stride``."""
    w, h = truth.line.size_wh
    rows = session.execute(
        select(Frame.pk, Frame.source_index)
        .where(Frame.source_index.is_not(None), Frame.source_index < until)
        .where((Frame.source_index % stride) == 0)
        .order_by(Frame.source_index)
    ).all()
    pk_of = {pk: index for pk, index in rows if index is not None}
    found: dict[int, list[Detection]] = defaultdict(list)
    pks = list(pk_of)
    for k in range(0, len(pks), 500):
        for det in session.scalars(
            select(Detection).where(Detection.frame_pk.in_(pks[k : k + 500]))
        ):
            found[pk_of[det.frame_pk]].append(det)
    indices = sorted(pk_of.values())
    images: dict[int, ScoredImage] = {}
    for index in indices:
        boxes = truth.boxes_at(index)
        dets = found.get(index, [])
        images[index] = ScoredImage(
            size_wh=(w, h),
            truth_xyxy=[
                (b.xyxyn[0] * w, b.xyxyn[1] * h, b.xyxyn[2] * w, b.xyxyn[3] * h) for b in boxes
            ],
            truth_class=[CLASS_NAMES.index(b.class_name) for b in boxes],
            found_xyxy=[(d.x1 * w, d.y1 * h, d.x2 * w, d.y2 * h) for d in dets],
            found_class=[d.class_id for d in dets],
            found_confidence=[d.confidence for d in dets],
        )
    points = []
    step = max(window // 2, 1)
    for start in range(0, max(until - window, 0) + 1, step):
        chosen = [images[i] for i in indices if start <= i < start + window]
        if chosen:
            points.append(LivePoint(start, start + window, map50_of(chosen, nc=len(CLASS_NAMES))))
    return points
