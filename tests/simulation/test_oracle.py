"""The oracle reviewer: through the real labeling API, it answers each task with the frame's
ground truth (re-rendered from its source_index), and with noise drops or mislabels boxes."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import cv2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import app_state
from support.labeling import ProductionRegistry
from visionloop.server.model_catalog import ModelCatalog
from visionloop.simulation.oracle import OracleReviewer
from visionloop.simulation.truth import LineTruth
from visionloop.vision.synthetic import CLASS_NAMES, SyntheticLine

SIZE_WH = (320, 240)


def _send(device_client: TestClient, line: SyntheticLine, indices: list[int]) -> None:
    """Uncertain frames of the line, numbered, with images (so each becomes a task)."""
    w, h = line.size_wh
    for index in indices:
        frame_id = str(uuid.uuid4())
        record: dict[str, Any] = {
            "id": frame_id,
            "captured_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "model_version": "1",
            "width": w,
            "height": h,
            "stats": {"brightness": 0.5, "contrast": 0.2, "sharpness": 100.0},
            "detections": [],
            "sample_reason": "uncertain",
            "source_index": index,
        }
        r = device_client.post("/api/v1/ingest", json={"frames": [record]})
        assert r.status_code == 200, r.text
        ok, jpeg = cv2.imencode(".jpg", line.render(index).frame_bgr)
        assert ok
        r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=jpeg.tobytes())
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("noise", [0.0, 0.5], ids=["exact", "noisy"])
def test_oracle_submits_each_frames_ground_truth(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, noise: float
) -> None:
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: ProductionRegistry()
    )
    line = SyntheticLine(seed=3, size_wh=SIZE_WH, schedule="blur:0.5@40")
    indices = [0, 37, 90, 151, 212]
    _send(device_client, line, indices)
    truth = LineTruth(SyntheticLine(seed=3, size_wh=SIZE_WH, schedule="blur:0.5@40"))
    expected = sum(len(truth.boxes_at(i)) for i in indices)
    assert expected > 0
    oracle = OracleReviewer(reviewer_client, truth, noise=noise, rng=random.Random(1))
    assert oracle.review(limit=3) == 3
    assert oracle.review(limit=100) == 2
    assert oracle.review(limit=100) == 0
    assert oracle.submitted == 5 and oracle.skipped == 0
    if noise == 0.0:
        assert oracle.boxes == expected and oracle.dropped == oracle.mislabeled == 0
    else:
        assert oracle.dropped + oracle.mislabeled > 0
        assert oracle.boxes == expected - oracle.dropped
    stats = reviewer_client.get("/api/v1/labeling/stats").json()
    assert stats["reviewed_frames"] == 5
    assert sum(c["labels"] for c in stats["labels_per_class"]) == oracle.boxes
    assert {c["class_name"] for c in stats["labels_per_class"]} <= set(CLASS_NAMES)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_frame_of_another_line_is_skipped_with_the_reason(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: ProductionRegistry()
    )
    line = SyntheticLine(seed=3, size_wh=SIZE_WH)
    _send(device_client, line, [5])
    oracle = OracleReviewer(reviewer_client, LineTruth(SyntheticLine(seed=3, size_wh=(640, 480))))
    assert oracle.review(limit=10) == 0
    assert oracle.skipped == 1
