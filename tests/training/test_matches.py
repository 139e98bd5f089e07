"""Per-image matches: their mAP50 equals faster-coco-eval's on the same detections, and a weighted
set equals the set with its images repeated."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from visionloop.training.evaluate import _coco_eval
from visionloop.training.matches import map50, map50_weighted, match_coco

pytest.importorskip("faster_coco_eval")

NC = 3


def random_set(
    seed: int, images: int = 40, *, skill: float = 0.7
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground truth of ``images`` 200x200 images and detections: each true box found
    (jittered) with probability ``skill``, plus false positives, scores random."""
    rng = np.random.default_rng(seed)
    gt: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": k, "name": str(k)} for k in range(NC)],
    }
    dets: list[dict[str, Any]] = []
    for image_id in range(1, images + 1):
        gt["images"].append(
            {"id": image_id, "width": 200, "height": 200, "file_name": str(image_id)}
        )
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 150, 2)
            w, h = rng.uniform(10, 50, 2)
            cls = int(rng.integers(0, NC))
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": cls,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            if rng.random() < skill:
                j = rng.normal(0, 4, 4)
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": cls,
                        "bbox": [x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)],
                        "score": float(rng.uniform(0.3, 1.0)),
                    }
                )
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 150, 2)
            dets.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(0, NC)),
                    "bbox": [x, y, 20.0, 20.0],
                    "score": float(rng.uniform(0.0, 0.8)),
                }
            )
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_map50_equals_faster_coco_eval(seed: int) -> None:
    gt, dets = random_set(seed)
    expected = max(float(np.asarray(_coco_eval(gt, dets).stats)[1]), 0.0)
    assert map50(match_coco(gt, dets, NC)) == pytest.approx(expected, abs=1e-9)


def test_weights_equal_repeated_images() -> None:
    gt, dets = random_set(5, images=12)
    table = match_coco(gt, dets, NC)
    weights = np.asarray([[2, 0, 1, 3, 1, 0, 0, 1, 2, 1, 1, 0]], np.float64)
    # the same resample written out: image i repeated weights[i] times, as new image ids
    gt2: dict[str, Any] = {"images": [], "annotations": [], "categories": gt["categories"]}
    dets2: list[dict[str, Any]] = []
    for i, image in enumerate(gt["images"]):
        for copy in range(int(weights[0, i])):
            new_id = len(gt2["images"]) + 1
            gt2["images"].append({**image, "id": new_id})
            gt2["annotations"] += [
                {**a, "id": len(gt2["annotations"]) + 1 + n, "image_id": new_id}
                for n, a in enumerate(x for x in gt["annotations"] if x["image_id"] == image["id"])
            ]
            dets2 += [{**d, "image_id": new_id} for d in dets if d["image_id"] == image["id"]]
            del copy
    expected = map50(match_coco(gt2, dets2, NC))
    assert float(map50_weighted(table, weights)[0]) == pytest.approx(expected, abs=1e-9)
