"""GET /api/v1/stats/summary: per class, per device, confidence histogram, totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import add_device, frame_record

SUMMARY = "/api/v1/stats/summary"


def test_summary_over_a_window(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    now = datetime.now(UTC)
    recent = [
        frame_record(captured_at=now - timedelta(minutes=5), detections=2, confidence=0.95),
        frame_record(
            captured_at=now - timedelta(minutes=10),
            detections=1,
            class_names=("crack",),
            confidence=0.05,
        ),
        frame_record(captured_at=now - timedelta(minutes=20), detections=0),
    ]
    old = [frame_record(captured_at=now - timedelta(days=3), detections=4, confidence=0.5)]
    assert device_client.post("/api/v1/ingest", json={"frames": recent + old}).status_code == 200
    add_device(app, "idle-cam")

    s = viewer_client.get(SUMMARY, params={"window": "1h"}).json()
    assert s["window"] == "1h"
    assert s["frames"] == 3 and s["detections"] == 3
    per_class = {c["class_name"]: (c["frames"], c["detections"]) for c in s["per_class"]}
    assert per_class == {"scratch": (1, 1), "dent": (1, 1), "crack": (1, 1)}
    assert s["confidence_histogram"]["counts"] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert len(s["confidence_histogram"]["edges"]) == 11
    devices = {d["name"]: (d["frames"], d["detections"]) for d in s["per_device"]}
    assert devices == {"cam1": (3, 3), "idle-cam": (0, 0)}
    assert s["frames_total"] == 4 and s["detections_total"] == 7

    week = viewer_client.get(SUMMARY, params={"window": "7d"}).json()
    assert week["frames"] == 4 and week["detections"] == 7
    assert week["confidence_histogram"]["counts"][5] == 4


def test_confidence_of_one_falls_in_the_last_bin(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    device_client.post("/api/v1/ingest", json={"frames": [frame_record(confidence=1.0)]})
    counts = viewer_client.get(SUMMARY).json()["confidence_histogram"]["counts"]
    assert counts[-1] == 2 and sum(counts) == 2


def test_empty_store(viewer_client: TestClient) -> None:
    s = viewer_client.get(SUMMARY).json()
    assert s["frames"] == s["detections"] == s["frames_total"] == s["detections_total"] == 0
    assert s["per_class"] == [] and sum(s["confidence_histogram"]["counts"]) == 0


@pytest.mark.parametrize("window", ["", "24", "1y", "-1h", "0h", "99999d", "h1"])
def test_bad_window_is_422(viewer_client: TestClient, window: str) -> None:
    r = viewer_client.get(SUMMARY, params={"window": window})
    assert r.status_code == 422
    assert "window" in r.json()["detail"]
