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
    consecutive: bool = False,
) -> list[dict[str, Any]]:
    """``count`` frame records (ingest's JSON) of the line under ``drift`` (the ``draw``-th
    draw: each draw picks other frames), captured from ``t0`` on, ``FRAME_GAP`` apart: random
    frames of the line (a sample of its normal, as a model's validation set is), or with
    ``consecutive`` a run of consecutive frames from a random start (what a camera sends: a part
    stays in view for ``line.frames_per_view`` frames, so neighbours are strongly correlated).

    The simulated detector gives each defect its own confidence (a real model's confidence in
    one defect changes little from frame to frame), jittered by ±0.02 per frame."""
    rng = np.random.default_rng([line.seed, draw, 17])
    loss = drift.intensity if not drift.is_nominal else 0.0
    w, h = line.size_wh
    if consecutive:
        start = int(rng.integers(0, LINE_SPAN))
        indices = np.arange(start, start + count)
    else:
        indices = rng.integers(0, LINE_SPAN, size=count)
    records = []
    for k, index in enumerate(indices):
        scene = line.render(int(index), drift=drift)
        stats = frame_stats(scene.frame_bgr)
        detections = []
        for box, class_id in zip(scene.xyxy, scene.class_id, strict=True):
            # A defect keeps its row on the belt while it crosses the view: key it by that.
            own = np.random.default_rng([line.seed, int(class_id), round(float(box[1]) * 4)])
            base = own.uniform(0.55, 0.97) + rng.uniform(-0.02, 0.02)
            confidence = float(base * (1.0 - 0.6 * loss))
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
