"""Evaluation: exact COCO figures on crafted predictions; agreement with Ultralytics' val."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from support.models import have_ultralytics, ultralytics_json, write_constant_model
from visionloop.errors import InvalidInputError
from visionloop.training.evaluate import dataset_digest, evaluate, split_files
from visionloop.vision.detector import load_detector

pytest.importorskip("faster_coco_eval")

NAMES = {0: "scratch", 1: "dent", 2: "crack", 3: "stain"}
# Ground truth of every image (64x64): class, x1, y1, x2, y2 in pixels.
GT = [(0, 8, 8, 24, 24), (1, 32, 32, 56, 48), (2, 40, 4, 60, 20)]


def _write_dataset(root: Path, *, images: int = 3, labels: list[tuple[int, ...]] = GT) -> Path:
    for split in ("test", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(images):
            cv2.imwrite(
                str(root / "images" / split / f"{i:03d}.png"), np.zeros((64, 64, 3), np.uint8)
            )
            rows = [
                f"{c} {(x1 + x2) / 128:.6f} {(y1 + y2) / 128:.6f} {(x2 - x1) / 64:.6f} "
                f"{(y2 - y1) / 64:.6f}"
                for c, x1, y1, x2, y2 in labels
            ]
            (root / "labels" / split / f"{i:03d}.txt").write_text("\n".join(rows) + "\n")
    names = "\n".join(f"  {k}: {v}" for k, v in NAMES.items())
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/val\nval: images/val\ntest: images/test\nnames:\n{names}\n"
    )
    return root


def _model(path: Path, boxes: list[tuple[float, ...]]) -> Path:
    """A constant end-to-end model answering ``boxes`` (x1, y1, x2, y2, score, class)."""
    rows = np.zeros((1, 8, 6), np.float32)
    rows[0, : len(boxes)] = np.array(boxes, np.float32)
    return write_constant_model(
        path, rows, names=NAMES, imgsz_hw=(64, 64), metadata={"end2end": "True"}
    )


def test_perfect_predictions_score_one(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    model = _model(tmp_path / "m.onnx", [(x1, y1, x2, y2, 0.9, c) for c, x1, y1, x2, y2 in GT])
    report = evaluate(model, data, backend="onnxruntime").to_dict()
    assert report["map50"] == pytest.approx(1.0)
    assert report["map50_95"] == pytest.approx(1.0)
    assert report["images"] == 3
    assert report["per_class"] == {
        "scratch": {"ap50": pytest.approx(1.0), "recall": pytest.approx(1.0), "instances": 3},
        "dent": {"ap50": pytest.approx(1.0), "recall": pytest.approx(1.0), "instances": 3},
        "crack": {"ap50": pytest.approx(1.0), "recall": pytest.approx(1.0), "instances": 3},
    }  # stain has no ground truth: left out


def test_loose_box_missed_class_and_low_confidence(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    model = _model(
        tmp_path / "m.onnx",
        [
            # scratch: IoU 256/288 = 0.889 with its GT box: a hit at IoU 0.50..0.85, a miss above
            (8, 8, 24, 26, 0.9, 0),
            # dent: exact but below the 0.25 operating threshold: counts for AP, not for recall
            (32, 32, 56, 48, 0.1, 1),
            # crack: not found at all (a box of the wrong class instead)
            (40, 4, 60, 20, 0.8, 3),
        ],
    )
    report = evaluate(model, data, backend="onnxruntime")
    per = report.per_class
    assert per["scratch"].ap50 == pytest.approx(1.0)
    assert per["dent"].ap50 == pytest.approx(1.0)
    assert per["dent"].recall == 0.0
    assert per["scratch"].recall == pytest.approx(1.0)
    assert per["crack"].ap50 == 0.0 and per["crack"].recall == 0.0
    assert report.map50 == pytest.approx(2 / 3)
    # scratch hits at 8 of the 10 IoU thresholds; stain has no ground truth: not averaged
    assert report.map50_95 == pytest.approx((0.8 + 1.0 + 0.0) / 3, abs=1e-6)


def test_evaluate_takes_a_loaded_detector(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    model = _model(tmp_path / "m.onnx", [(x1, y1, x2, y2, 0.9, c) for c, x1, y1, x2, y2 in GT])
    detector = load_detector(model, backend="onnxruntime", conf=0.001)
    assert evaluate(detector, data / "data.yaml", split="val").map50 == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-split", "no 'test' split"),
        ("bad-label", "not a YOLO label row"),
        ("bad-class", "class 7 not in"),
        ("no-yaml", "no data.yaml"),
    ],
)
def test_bad_datasets_are_clear_errors(tmp_path: Path, change: str, message: str) -> None:
    data = _write_dataset(tmp_path / "ds")
    model = _model(tmp_path / "m.onnx", [(8, 8, 24, 24, 0.9, 0)])
    if change == "no-split":
        text = (data / "data.yaml").read_text().replace("test: images/test\n", "")
        (data / "data.yaml").write_text(text)
    elif change == "bad-label":
        (data / "labels" / "test" / "000.txt").write_text("0 0.5 oops\n")
    elif change == "bad-class":
        (data / "labels" / "test" / "000.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    else:
        (data / "data.yaml").unlink()
    with pytest.raises(InvalidInputError, match=message):
        evaluate(model, data, backend="onnxruntime")


def test_a_split_may_list_several_folders(tmp_path: Path) -> None:
    """Ultralytics' ``val: [a, b]`` (what a retraining round writes: its export and its replay)
    is every folder's images, each with its own labels; a missing folder is named."""
    data = _write_dataset(tmp_path / "ds", images=2)
    text = (
        (data / "data.yaml")
        .read_text()
        .replace("val: images/val\n", "val:\n  - images/val\n  - images/test\n")
    )
    (data / "data.yaml").write_text(text)
    files = split_files(data, "val")
    assert [p.parent.name for p in files.images] == ["val", "val", "test", "test"]
    assert all(label.is_file() for label in files.labels)
    (data / "data.yaml").write_text(text.replace("images/test\n", "images/gone\n", 1))
    with pytest.raises(InvalidInputError, match="images/gone: the val split's image folder"):
        split_files(data, "val")


def test_class_count_mismatch_is_refused(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    rows = np.zeros((1, 4, 6), np.float32)
    model = write_constant_model(
        tmp_path / "m.onnx", rows, names={0: "a"}, metadata={"end2end": "True"}
    )
    with pytest.raises(InvalidInputError, match="classes"):
        evaluate(model, data, backend="onnxruntime")


def test_dataset_digest_tracks_content_not_location(tmp_path: Path) -> None:
    data = _write_dataset(tmp_path / "ds")
    first = dataset_digest(data)
    copy = shutil.copytree(data, tmp_path / "elsewhere")
    (copy / "data.yaml").write_text((copy / "data.yaml").read_text().replace(str(data), str(copy)))
    assert dataset_digest(copy) == first
    (copy / "labels" / "test" / "cache.cache").write_text("ultralytics cache")
    assert dataset_digest(copy) == first
    (copy / "labels" / "test" / "000.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    assert dataset_digest(copy) != first
    assert len(first) == 64


@pytest.mark.train
@pytest.mark.skipif(not have_ultralytics(), reason="needs the train extra (ultralytics)")
def test_agrees_with_ultralytics_val(baseline_onnx: Path, tmp_path: Path) -> None:
    from visionloop.vision.synthetic import write_dataset

    # Moderate blur puts the baseline mid-range (mAP50 ~0.5), where a metric that counted
    # matches or interpolated precision differently would show; nominal is ~0.99 for both.
    data_yaml = write_dataset(
        tmp_path / "blurred", n=40, seed=11, scenario="blur:0.5", splits=(0.0, 0.0, 1.0)
    )
    ours = evaluate(baseline_onnx, data_yaml, backend="onnxruntime")
    imgsz = load_detector(baseline_onnx, backend="onnxruntime").info.imgsz_hw[0]
    theirs = ultralytics_json(
        "val",
        "--weights", str(baseline_onnx),
        "--data", str(data_yaml),
        "--split", "test",
        "--imgsz", str(imgsz),
        config_dir=tmp_path / "ultralytics",
        out=tmp_path / "val.json",
    )  # fmt: skip
    assert 0.2 < ours.map50 < 0.9, "a mid-range mAP is needed for the comparison to mean much"
    assert ours.map50 == pytest.approx(theirs["map50"], abs=0.02)
    assert ours.map50_95 == pytest.approx(theirs["map50_95"], abs=0.03)


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ([(10, 10, 50, 50, 0, 0.9), (60, 60, 90, 90, 1, 0.8)], 1.0),
        ([(10, 10, 50, 50, 0, 0.9)], 0.5),
        ([(10, 10, 50, 50, 1, 0.9), (60, 60, 90, 90, 0, 0.8)], 0.0),
        ([], 0.0),
    ],
    ids=["all-found", "half-found", "wrong-classes", "nothing-found"],
)
def test_map50_of_detections_already_made(
    found: list[tuple[float, float, float, float, int, float]], expected: float
) -> None:
    from visionloop.training.evaluate import ScoredImage, map50_of

    image = ScoredImage(
        size_wh=(100, 100),
        truth_xyxy=[(10, 10, 50, 50), (60, 60, 90, 90)],
        truth_class=[0, 1],
        found_xyxy=[f[:4] for f in found],
        found_class=[f[4] for f in found],
        found_confidence=[f[5] for f in found],
    )
    assert map50_of([image], nc=2) == pytest.approx(expected, abs=0.02)
    empty = ScoredImage((100, 100), [], [], [], [], [])
    assert map50_of([empty], nc=2) is None
