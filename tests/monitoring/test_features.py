"""Per-frame drift features from stored frames and detections."""

from __future__ import annotations

import pytest

from visionloop.monitoring.features import (
    FEATURES,
    NO_CLASS,
    BoxRow,
    feature_table,
    frame_features,
)


def test_a_frame_without_detections_has_zeros_and_no_class() -> None:
    row = frame_features(brightness=0.5, contrast=0.2, sharpness=100.0, boxes=[])
    assert row == {
        "brightness": 0.5,
        "contrast": 0.2,
        "sharpness": 100.0,
        "detection_count": 0.0,
        "max_confidence": 0.0,
        "mean_confidence": 0.0,
        "mean_box_area": 0.0,
        "mean_box_aspect": 0.0,
        "top_class": NO_CLASS,
    }


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        pytest.param(
            [BoxRow("dent", 0.9, 0.0, 0.0, 0.2, 0.1)],
            {"max_confidence": 0.9, "mean_box_area": 0.02, "mean_box_aspect": 2.0, "top": "dent"},
            id="one-box",
        ),
        pytest.param(
            [BoxRow("dent", 0.4, 0.0, 0.0, 0.1, 0.1), BoxRow("crack", 0.8, 0.5, 0.5, 0.6, 0.9)],
            {
                "max_confidence": 0.8,
                "mean_box_area": 0.025,
                "mean_box_aspect": 0.625,
                "top": "crack",
            },
            id="top-class-is-most-confident",
        ),
        pytest.param(
            [BoxRow("stain", 0.5, 0.3, 0.3, 0.4, 0.3)],
            {"max_confidence": 0.5, "mean_box_area": 0.0, "mean_box_aspect": 0.0, "top": "stain"},
            id="degenerate-box",
        ),
    ],
)
def test_detection_features(boxes: list[BoxRow], expected: dict[str, object]) -> None:
    row = frame_features(brightness=0.5, contrast=0.2, sharpness=1.0, boxes=boxes)
    assert row["detection_count"] == len(boxes)
    assert row["max_confidence"] == pytest.approx(expected["max_confidence"])
    assert row["mean_confidence"] == pytest.approx(sum(b.confidence for b in boxes) / len(boxes))
    assert row["mean_box_area"] == pytest.approx(expected["mean_box_area"])
    assert row["mean_box_aspect"] == pytest.approx(expected["mean_box_aspect"])
    assert row["top_class"] == expected["top"]


def test_feature_table_has_one_column_per_feature() -> None:
    rows = [frame_features(brightness=b, contrast=0.1, sharpness=1.0, boxes=[]) for b in (0.1, 0.2)]
    table = feature_table(rows)
    assert len(table) == 2
    assert list(table.columns) == list(FEATURES)
    assert table.columns["brightness"] == [0.1, 0.2]
