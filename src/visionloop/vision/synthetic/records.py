"""Frame records of the synthetic line as an edge agent would report them, without a model: the
edge's image statistics of each rendered frame, and detections from a simulated detector that
finds the ground-truth defects with a confidence that falls as drift grows (a real model loses
confidence under conditions it was not trained on). For drift tests and ``benchmarks/drift.py``:
the records hold the same features a drift check reads from real ones."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from visionloop.vision.preprocess import frame_stats
from visionloop.vision.synthetic.line import SyntheticLine
from visionloop.vision.synthetic.schedule import Drift

CLASS_NAMES = ("scratch", "dent", "crack", "stain")
SIZE_WH = (320, 240)
LINE_SPAN = 1_000_000
"""Frame indices are drawn from this many: a window is a random sample of the line's frames."""
FRAME_GAP = timedelta(milliseconds=200)


def simulated_records(
    line: SyntheticLine,
    *,
    draw: int,
    count: int,
    drift: Drift,
    t0: datetime,
    model_version: str = "1",
) -> list[dict[str, Any]]:
    """``count`` frame records (ingest's JSON) of random frames of the line (the ``draw``-th
    draw: each draw picks other frames) under ``drift``, captured from ``t0`` on, ``FRAME_GAP``
    apart. Random rather than consecutive frames: 500 consecutive frames show only a dozen parts,
    which is not a sample of the line's normal (two such nominal windows differ significantly)."""
    rng = np.random.default_rng([line.seed, draw, 17])
    loss = drift.intensity if not drift.is_nominal else 0.0
    w, h = line.size_wh
    records = []
    for k, index in enumerate(rng.integers(0, LINE_SPAN, size=count)):
        scene = line.render(int(index), drift=drift)
        stats = frame_stats(scene.frame_bgr)
        detections = []
        for box, class_id in zip(scene.xyxy, scene.class_id, strict=True):
            confidence = float(rng.uniform(0.55, 0.97) * (1.0 - 0.6 * loss))
            if confidence < 0.25:
                continue  # missed
            x1, y1, x2, y2 = (float(v) for v in box)
            detections.append(
                {
                    "class_id": int(class_id),
                    "class_name": CLASS_NAMES[int(class_id) % len(CLASS_NAMES)],
                    "confidence": round(confidence, 4),
                    "xyxyn": [x1 / w, y1 / h, x2 / w, y2 / h],
                }
            )
        captured = t0 + k * FRAME_GAP
        records.append(
            {
                "id": str(uuid.uuid4()),
                "captured_at": captured.isoformat().replace("+00:00", "Z"),
                "model_version": model_version,
                "width": w,
                "height": h,
                "stats": {
                    "brightness": stats.brightness,
                    "contrast": stats.contrast,
                    "sharpness": stats.sharpness,
                },
                "detections": detections,
                "sample_reason": None,
            }
        )
    return records
