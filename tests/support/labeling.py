"""Labeling helpers: uncertain frames of the synthetic line sent through the ingest and image
routes, and a reviewer who submits each frame's true boxes through the labeling API.

- ``send_frames(device_client, per_split, ...)``: frame ids picked so that each split gets
  ``per_split[split]`` frames; returns frame id -> true labels.
- ``review_everything(reviewer_client, truth)``: lease and submit until the queue is empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2
from fastapi.testclient import TestClient

from visionloop.datasets.split import id_in_split
from visionloop.training.registry import ModelVersion
from visionloop.vision.synthetic import CLASS_NAMES, SyntheticLine

CSRF = {"X-Visionloop-CSRF": "1"}
NAMESPACE = uuid.UUID("9d1f7f0e-1c1b-4c55-8a56-6b3f0f6d2a10")


def send_frames(
    device_client: TestClient,
    per_split: Mapping[str, int],
    *,
    seed: int = 11,
    namespace: uuid.UUID = NAMESPACE,
) -> dict[str, list[dict[str, Any]]]:
    line = SyntheticLine(seed=seed)
    w, h = line.size_wh
    truth: dict[str, list[dict[str, Any]]] = {}
    k = 0
    for split, count in per_split.items():
        for _ in range(count):
            scene = line.render(k * line.frames_per_view)
            frame_id = str(id_in_split(namespace, str(k), split))  # type: ignore[arg-type]
            k += 1
            labels = [
                {"class_id": int(c), "xyxyn": [x1 / w, y1 / h, x2 / w, y2 / h]}
                for (x1, y1, x2, y2), c in zip(
                    scene.xyxy.tolist(), scene.class_id.tolist(), strict=True
                )
            ]
            record = {
                "id": frame_id,
                "captured_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "model_version": "1",
                "width": w,
                "height": h,
                "stats": {"brightness": 0.5, "contrast": 0.2, "sharpness": 100.0},
                "detections": [
                    {"class_id": 0, "class_name": CLASS_NAMES[0], "confidence": 0.5,
                     "xyxyn": [0.1, 0.1, 0.2, 0.2]}
                ],
                "sample_reason": "uncertain",
            }  # fmt: skip
            r = device_client.post("/api/v1/ingest", json={"frames": [record]})
            assert r.status_code == 200, r.text
            ok, jpeg = cv2.imencode(".jpg", scene.frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            assert ok
            r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=jpeg.tobytes())
            assert r.status_code == 200, r.text
            truth[frame_id] = labels
    return truth


def review_everything(reviewer_client: TestClient, truth: dict[str, list[dict[str, Any]]]) -> None:
    reviewed = set()
    while (r := reviewer_client.post("/api/v1/labeling/next", headers=CSRF)).status_code == 200:
        task = r.json()["task"]
        assert task["frame_id"] not in reviewed
        done = reviewer_client.post(
            f"/api/v1/labeling/tasks/{task['id']}/submit",
            json={"labels": truth[task["frame_id"]]},
            headers=CSRF,
        )
        assert done.status_code == 200, done.text
        reviewed.add(task["frame_id"])
    assert r.status_code == 204
    assert reviewed == set(truth)


@dataclass(frozen=True, slots=True)
class ProductionRegistry:
    """A registry whose production version (1) has ``classes`` (the synthetic line's by
    default): what a ``ModelCatalog`` reads, without an MLflow store."""

    classes: Sequence[str] = tuple(CLASS_NAMES)

    def production(self) -> ModelVersion:
        return ModelVersion(
            version="1",
            aliases=["production"],
            sha256="0" * 64,
            size_bytes=1,
            metrics={},
            tags={"classes": ",".join(self.classes)},
            created_at=datetime(2026, 11, 1, tzinfo=UTC),
        )
