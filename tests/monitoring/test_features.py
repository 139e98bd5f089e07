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


def test_window_features_equal_frame_features_frame_by_frame() -> None:
    import numpy as np

    from visionloop.monitoring.features import window_features

    rng = np.random.default_rng(3)
    frames: list[list[BoxRow]] = []
    for _ in range(200):
        boxes = []
        for _ in range(int(rng.integers(0, 4))):  # a quarter of the frames have none
            x1, y1 = rng.uniform(0, 0.8, size=2)
            x2, y2 = x1 + rng.uniform(0, 0.2), y1 + rng.uniform(0, 0.2)
            conf = float(rng.choice([0.5, 0.7, 0.9]))  # ties for the most confident
            boxes.append(BoxRow(str(rng.choice(["dent", "scratch"])), conf, x1, y1, x2, y2))
        frames.append(boxes)
    frames.append([BoxRow("dent", 0.6, 0.5, 0.5, 0.5, 0.7)])  # zero width
    stats = [(0.1 * (i % 7), 0.2, float(i)) for i in range(len(frames))]
    expected = feature_table(
        frame_features(brightness=b, contrast=c, sharpness=s, boxes=boxes)
        for (b, c, s), boxes in zip(stats, frames, strict=True)
    )
    got = window_features(
        brightness=[b for b, _, _ in stats],
        contrast=[c for _, c, _ in stats],
        sharpness=[s for _, _, s in stats],
        box_frame=[i for i, boxes in enumerate(frames) for _ in boxes],
        box_class=[b.class_name for boxes in frames for b in boxes],
        box_confidence=[b.confidence for boxes in frames for b in boxes],
        box_xyxyn=[(b.x1, b.y1, b.x2, b.y2) for boxes in frames for b in boxes],
    )
    assert got.columns["top_class"] == expected.columns["top_class"]
    for name in FEATURES:
        if name != "top_class":
            assert np.allclose(got.columns[name], expected.columns[name]), name
