"""GET /api/v1/stats/summary: per class, per device, confidence histogram, totals."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from support.db import add_device, app_state, frame_record
from visionloop.server.schemas import parse_window
from visionloop.server.store.stats import rebuild_rollups

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


def _brute_force(frames: list[dict[str, Any]], since: datetime, until: datetime) -> dict[str, Any]:
    per_class: dict[str, list[int]] = {}
    hist = [0] * 10
    n_frames = n_dets = 0
    for f in frames:
        ts = datetime.fromisoformat(f["captured_at"].replace("Z", "+00:00"))
        if not since <= ts < until:
            continue
        n_frames += 1
        for name in {d["class_name"] for d in f["detections"]}:
            per_class.setdefault(name, [0, 0])[0] += 1
        for d in f["detections"]:
            n_dets += 1
            per_class[d["class_name"]][1] += 1
            hist[min(int(d["confidence"] * 10), 9)] += 1
    return {
        "frames": n_frames,
        "detections": n_dets,
        "per_class": {k: tuple(v) for k, v in per_class.items()},
        "histogram": hist,
    }


@pytest.mark.parametrize("window_h", [1, 3, 7, 30])
def test_rollups_agree_with_the_raw_data(
    device_client: TestClient, viewer_client: TestClient, window_h: int
) -> None:
    rng = random.Random(window_h)
    now = datetime.now(UTC)
    frames = []
    for _ in range(150):
        f = frame_record(
            captured_at=now - timedelta(seconds=rng.uniform(0, 40 * 3600)), detections=0
        )
        f["detections"] = [
            {
                "class_id": k,
                "class_name": ("scratch", "dent", "crack")[rng.randrange(3)],
                "confidence": round(rng.random(), 3),
                "xyxyn": [0.1, 0.1, 0.2, 0.2],
            }
            for k in range(rng.randrange(4))
        ]
        frames.append(f)
    for i in range(0, len(frames), 40):
        device_client.post("/api/v1/ingest", json={"frames": frames[i : i + 40]})
    # Duplicates must not count twice.
    device_client.post("/api/v1/ingest", json={"frames": frames[:60]})

    s = viewer_client.get(SUMMARY, params={"window": f"{window_h}h"}).json()
    until = datetime.fromisoformat(s["until"].replace("Z", "+00:00"))
    since = datetime.fromisoformat(s["since"].replace("Z", "+00:00"))
    want = _brute_force(frames, since, until)
    assert s["frames"] == want["frames"]
    assert s["detections"] == want["detections"]
    assert {c["class_name"]: (c["frames"], c["detections"]) for c in s["per_class"]} == want[
        "per_class"
    ]
    assert s["confidence_histogram"]["counts"] == want["histogram"]
    assert s["frames_total"] == 150
    assert s["detections_total"] == sum(len(f["detections"]) for f in frames)


def test_rebuilt_rollups_equal_the_ones_ingest_kept(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    now = datetime.now(UTC)
    frames = [
        frame_record(captured_at=now - timedelta(minutes=37 * i), detections=i % 4)
        for i in range(40)
    ]
    device_client.post("/api/v1/ingest", json={"frames": frames})
    before = viewer_client.get(SUMMARY, params={"window": "30h"}).json()
    with app_state(app).engine.begin() as conn:
        kept = [
            conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2, 3")).all()
            for t in ("frame_rollups", "class_rollups")
        ]
        rebuild_rollups(conn)
    with app_state(app).engine.connect() as conn:
        rebuilt = [
            conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2, 3")).all()
            for t in ("frame_rollups", "class_rollups")
        ]
    assert rebuilt == kept
    after = viewer_client.get(SUMMARY, params={"window": "30h"}).json()
    assert {k: v for k, v in after.items() if k not in ("since", "until")} == {
        k: v for k, v in before.items() if k not in ("since", "until")
    }


RATE = "/api/v1/stats/rate"


@pytest.mark.parametrize(
    ("window", "bucket_s"),
    [("1h", 60), ("6h", 3600), ("7d", 3600)],
    ids=["minutes", "hours-6h", "hours-7d"],
)
def test_rate_counts_every_frame_in_its_bucket(
    app: FastAPI,
    device_client: TestClient,
    viewer_client: TestClient,
    window: str,
    bucket_s: int,
) -> None:
    now = datetime.now(UTC)
    ages_s = [30, 50, 200, 1900, 3000]
    frames = [
        frame_record(captured_at=now - timedelta(seconds=a), detections=i % 3)
        for i, a in enumerate(ages_s)
    ]
    frames.append(frame_record(captured_at=now - timedelta(days=8), detections=4))  # outside
    assert device_client.post("/api/v1/ingest", json={"frames": frames}).status_code == 200
    # Another device's frames count too.
    with TestClient(app, headers=add_device(app, "cam2").headers) as other:
        frames.insert(0, frame_record(captured_at=now - timedelta(seconds=100), detections=1))
        assert other.post("/api/v1/ingest", json={"frames": frames[:1]}).status_code == 200

    r = viewer_client.get(RATE, params={"window": window}).json()
    assert r["bucket_s"] == bucket_s
    points = r["points"]
    starts = [datetime.fromisoformat(p["start"].replace("Z", "+00:00")) for p in points]
    assert all(b - a == timedelta(seconds=bucket_s) for a, b in itertools.pairwise(starts))
    assert starts[0].timestamp() % bucket_s == 0
    assert starts[0] <= now - _window(window) < starts[0] + timedelta(seconds=bucket_s)
    assert sum(p["frames"] for p in points) == 6
    assert sum(p["detections"] for p in points) == 1 + sum(i % 3 for i in range(5))
    for f in frames[:6]:
        ts = datetime.fromisoformat(f["captured_at"].replace("Z", "+00:00"))
        point = points[int((ts - starts[0]).total_seconds()) // bucket_s]
        assert point["frames"] >= 1
    busiest = max(points, key=lambda p: p["frames"])
    assert busiest["frames_per_min"] == pytest.approx(busiest["frames"] * 60 / bucket_s, abs=1e-3)


def _window(text: str) -> timedelta:
    return parse_window(text)


def test_rate_of_an_empty_store_is_all_zeros(viewer_client: TestClient) -> None:
    points = viewer_client.get(RATE, params={"window": "1h"}).json()["points"]
    assert len(points) in (60, 61)
    assert {p["frames"] for p in points} == {0}


@pytest.mark.parametrize("window", ["8d", "1y", "0h", "abc"])
def test_rate_window_out_of_range_is_422(viewer_client: TestClient, window: str) -> None:
    r = viewer_client.get(RATE, params={"window": window})
    assert r.status_code == 422
    assert "window" in r.json()["detail"]
