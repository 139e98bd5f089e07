"""Building the frame record (docs/design.md) from one frame's detections and stats."""

from __future__ import annotations

import uuid
from datetime import datetime

import numpy as np

from visionloop.types import Detections, FrameRecord, FrameStats, SampleReason


def build_record(
    *,
    detections: Detections,
    size_wh: tuple[int, int],
    stats: FrameStats,
    names: dict[int, str],
    model_version: str,
    captured_at: datetime,
    sample_reason: SampleReason | None,
    frame_id: uuid.UUID | None = None,
    source_index: int | None = None,
) -> FrameRecord:
    """The wire record of one frame: boxes normalised ``xyxyn`` in 0..1 of the ``size_wh`` frame.

    ``names`` maps class ids to names (a class the model does not name is sent as its id).
    A fresh uuid4 is the idempotency key unless ``frame_id`` is given; ``source_index`` is the
    frame's number in its source. The record is validated,
    so a detector that emits NaN confidences fails here, at the edge, not at the server.
    """
    xyxyn = detections.xyxyn(size_wh).astype(np.float64).round(5).tolist()
    confidence = detections.confidence.astype(np.float64).round(4).tolist()
    class_id = detections.class_id.tolist()
    width, height = size_wh
    return FrameRecord.model_validate(
        {
            "id": frame_id or uuid.uuid4(),
            "captured_at": captured_at,
            "model_version": model_version,
            "width": width,
            "height": height,
            "stats": stats,
            "detections": [
                {
                    "class_id": cid,
                    "class_name": names.get(cid, str(cid)),
                    "confidence": conf,
                    "xyxyn": box,
                }
                for cid, conf, box in zip(class_id, confidence, xyxyn, strict=True)
            ],
            "sample_reason": sample_reason,
            "source_index": source_index,
        }
    )
