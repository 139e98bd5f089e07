"""Uploader against the real server app (uvicorn on loopback): batches, splits, dead letters."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from support.db import DeviceCredentials, LiveServer, add_device, app_state, frame_record
from support.edge import FaultTransport, device_http, server_frames
from visionloop.config import Settings
from visionloop.edge.outbox import Outbox
from visionloop.edge.sync import SyncConfig, Uploader
from visionloop.server.app import create_app
from visionloop.types import FrameRecord, Heartbeat

FAST = SyncConfig(backoff_base_s=0.01, backoff_max_s=0.05, heartbeat_s=0.2, idle_wait_s=0.05)
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def jpeg() -> bytes:
    frame = np.full((480, 640, 3), 128, np.uint8)
    ok, buf = cv2.imencode(".jpg", frame)
    assert ok
    return buf.tobytes()


def fill(outbox: Outbox, n: int, *, every_image: int = 0) -> list[str]:
    ids = []
    for i in range(n):
        rec = FrameRecord.model_validate(
            frame_record(captured_at=T0 + timedelta(seconds=i), sample_reason=None)
        )
        image = jpeg() if every_image and i % every_image == 0 else None
        if image is not None:
            rec = rec.model_copy(update={"sample_reason": "audit"})
        outbox.put(rec, image)
        ids.append(str(rec.id))
    return ids


def run_until_empty(uploader: Uploader, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not uploader.outbox.backlog().empty:
        assert time.monotonic() < deadline, "outbox did not drain"
        try:
            uploader.run_once()
        except Exception:  # RetryLater etc.: the thread would back off; here just go on
            time.sleep(0.01)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "edge" / "outbox.db")
    yield box  # type: ignore[misc]
    box.close()


def test_batches_of_at_most_200_then_images(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    ids = fill(outbox, 450, every_image=50)
    transport = FaultTransport(httpx.HTTPTransport())
    with device_http(live_server.url, device.token, transport=transport) as client:
        run_until_empty(Uploader(outbox, client, config=FAST))
    assert transport.ingest_sizes == [200, 200, 50]
    frames = server_frames(app)
    assert sorted(f.id for f in frames) == sorted(ids)
    assert {f.id for f in frames if f.has_image} == {ids[i] for i in range(0, 450, 50)}
    assert outbox.counters()["images_uploaded"] == 9


def test_413_splits_the_batch(settings: Settings, tmp_path: Path, outbox: Outbox) -> None:
    small = create_app(settings.model_copy(update={"max_batch_bytes": 40_000}))
    dev = add_device(small, "cam-small")
    server = LiveServer(small)
    server.start()
    try:
        ids = fill(outbox, 300)
        transport = FaultTransport(httpx.HTTPTransport())
        with device_http(server.url, dev.token, transport=transport) as client:
            uploader = Uploader(outbox, client, config=FAST)
            run_until_empty(uploader)
        assert sorted(f.id for f in server_frames(small)) == sorted(ids)
        assert max(transport.ingest_sizes) == 200  # the first try, answered 413
        assert len(transport.ingest_sizes) > 3
        assert uploader.stats.dead_letters == 0
    finally:
        server.stop()
        app_state(small).engine.dispose()


def test_422_naming_one_frame_moves_it_aside_and_sends_the_rest(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    good = fill(outbox, 10)
    # A record the edge would never build, but a corrupted or old outbox could hold.
    bad_id = str(uuid.uuid4())
    bad = frame_record(frame_id=bad_id, captured_at=T0 + timedelta(seconds=30))
    bad["detections"][0]["confidence"] = 1.5
    outbox.put_json(bad_id, json.dumps(bad), jpeg())
    good += fill(outbox, 10)
    with device_http(live_server.url, device.token) as client:
        uploader = Uploader(outbox, client, config=FAST)
        run_until_empty(uploader)
    assert sorted(f.id for f in server_frames(app)) == sorted(good)
    letters = outbox.dead_letters()
    assert [(d.record_id, d.kind, d.status) for d in letters] == [(bad_id, "record", 422)]
    assert "confidence" in letters[0].reason
    assert uploader.stats.dead_letters == 1
    assert outbox.counters()["dead_letters"] == 1


def test_wrong_token_is_retried_not_dropped(
    app: FastAPI, live_server: LiveServer, outbox: Outbox
) -> None:
    fill(outbox, 5)
    with device_http(live_server.url, "not-a-token") as client:
        uploader = Uploader(outbox, client, config=FAST)
        uploader.start()
        time.sleep(0.5)
        uploader.stop()
    assert outbox.backlog().records == 5
    assert outbox.dead_letters() == []
    assert uploader.stats.retries >= 2
    assert "401" in (uploader.stats.last_error or "")


def test_thread_retries_through_500s_and_sends_heartbeats(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    outbox: Outbox,
    admin_client: httpx.Client,
) -> None:
    ids = fill(outbox, 120, every_image=10)
    transport = FaultTransport(httpx.HTTPTransport(), fail_rate=0.4, lost_rate=0.2, seed=3)
    with device_http(live_server.url, device.token, transport=transport) as client:
        uploader = Uploader(
            outbox,
            client,
            heartbeat=lambda: Heartbeat(model_version="7", fps=12.5),
            config=FAST,
            seed=0,
        )
        uploader.start()
        assert uploader.drain(timeout=30)
        deadline = time.monotonic() + 5
        while uploader.stats.heartbeats == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        uploader.stop()
    assert transport.calls["500"] > 0 and transport.calls["lost"] > 0
    frames = server_frames(app)
    assert sorted(f.id for f in frames) == sorted(ids)
    assert sum(f.has_image for f in frames) == 12
    devices = admin_client.get("/api/v1/devices").json()
    beat = next(d for d in devices if d["name"] == device.name)["heartbeat"]
    assert beat["model_version"] == "7"
    assert beat["fps"] == 12.5
    assert "uploaded" in beat["counters"]
