"""Record building: normalised boxes, names, version, validation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import numpy as np
import pydantic
import pytest

from visionloop.edge.records import build_record
from visionloop.types import Detections, FrameRecord, FrameStats

STATS = FrameStats(brightness=0.5, contrast=0.2, sharpness=120.0)
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def dets(xyxy: list[list[float]], conf: list[float], cls: list[int]) -> Detections:
    return Detections(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        confidence=np.array(conf, np.float32),
        class_id=np.array(cls, np.int64),
    )


def test_record_normalises_boxes_and_names_classes() -> None:
    d = dets([[64, 48, 320, 240], [600, 400, 700, 500]], [0.91, 0.55], [1, 7])
    rec = build_record(
        detections=d,
        size_wh=(640, 480),
        stats=STATS,
        names={0: "scratch", 1: "dent"},
        model_version="3",
        captured_at=T0,
        sample_reason="uncertain",
    )
    assert rec.model_version == "3"
    assert (rec.width, rec.height) == (640, 480)
    assert rec.detections[0].class_name == "dent"
    assert rec.detections[0].xyxyn == pytest.approx([0.1, 0.1, 0.5, 0.5])
    assert rec.detections[0].confidence == pytest.approx(0.91)
    # A class the model does not name is sent as its id; a box past the frame edge is clipped.
    assert rec.detections[1].class_name == "7"
    assert rec.detections[1].xyxyn == pytest.approx([600 / 640, 400 / 480, 1.0, 1.0], abs=1e-5)
    assert rec.sample_reason == "uncertain"
    # It round-trips through the wire format the server validates.
    again = FrameRecord.model_validate(json.loads(rec.model_dump_json()))
    assert again == rec


def test_empty_detections_and_fresh_ids() -> None:
    kw = dict(
        detections=Detections.empty(),
        size_wh=(320, 240),
        stats=STATS,
        names={},
        model_version="local",
        captured_at=T0,
        sample_reason=None,
    )
    a = build_record(**kw)  # type: ignore[arg-type]
    b = build_record(**kw)  # type: ignore[arg-type]
    assert a.detections == [] and a.id != b.id
    fixed = uuid.uuid4()
    assert build_record(**kw, frame_id=fixed).id == fixed  # type: ignore[arg-type]


def test_nan_confidence_is_caught_at_the_edge() -> None:
    d = dets([[0, 0, 10, 10]], [float("nan")], [0])
    with pytest.raises(pydantic.ValidationError):
        build_record(
            detections=d,
            size_wh=(640, 480),
            stats=STATS,
            names={0: "a"},
            model_version="1",
            captured_at=T0,
            sample_reason=None,
        )
