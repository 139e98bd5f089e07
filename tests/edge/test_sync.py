"""Uploader against the real server app (uvicorn on loopback): batches, splits, dead letters."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import replace
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
from visionloop.edge.answers import TOKEN_REJECTED
from visionloop.edge.outbox import Outbox
from visionloop.edge.sync import SyncConfig, Uploader
from visionloop.server.app import create_app
from visionloop.server.models import DriftAlarm
from visionloop.types import FrameRecord, Heartbeat, HeartbeatAnswer

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


def test_wrong_token_stops_the_uploader_at_once_and_keeps_the_records(
    app: FastAPI, live_server: LiveServer, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 is permanent: no retry can fix a wrong token, so the uploader says so once, tells
    its owner and stops; nothing is dropped."""
    fill(outbox, 5)
    told: list[str] = []
    with device_http(live_server.url, "not-a-token") as client:
        uploader = Uploader(outbox, client, config=FAST, on_rejected=told.append)
        with caplog.at_level(logging.WARNING, logger="visionloop.edge.sync"):
            uploader.start()
            deadline = time.monotonic() + 5
            while uploader.alive and time.monotonic() < deadline:
                time.sleep(0.02)
    assert not uploader.alive
    assert outbox.backlog().records == 5
    assert outbox.dead_letters() == []
    assert uploader.stats.retries == 0
    assert uploader.rejected is not None and TOKEN_REJECTED in uploader.rejected
    assert told == [uploader.rejected]
    said = [r.getMessage() for r in caplog.records if TOKEN_REJECTED in r.getMessage()]
    assert len(said) == 1
    assert "visionloop devices rotate NAME" in said[0]


def test_disabled_device_is_said_plainly_and_stops(
    app: FastAPI, live_server: LiveServer, outbox: Outbox
) -> None:
    disabled = add_device(app, "cam-off", disabled=True)
    fill(outbox, 3)
    with device_http(live_server.url, disabled.token) as client:
        uploader = Uploader(outbox, client, config=FAST)
        uploader.start()
        deadline = time.monotonic() + 5
        while uploader.alive and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not uploader.alive
    assert outbox.backlog().records == 3
    assert "this device is disabled on the server (403): visionloop devices enable cam-off" in (
        uploader.rejected or ""
    )


def test_a_record_that_breaks_the_server_is_isolated_and_dead_lettered(
    app: FastAPI,
    device: DeviceCredentials,
    live_server: LiveServer,
    outbox: Outbox,
    admin_client: httpx.Client,
) -> None:
    """One record makes ingest answer 500 (the server's /readyz still answers): the batch is
    bisected, every other record arrives, and the record goes to the dead letters with the
    server's answer after failing alone ``dead_letter_after`` times (issue 7, poison records)."""
    ids = fill(outbox, 30, every_image=7)
    poison = ids[12]
    transport = FaultTransport(httpx.HTTPTransport(), crash_ids={poison})
    config = replace(FAST, dead_letter_after=4)
    with device_http(live_server.url, device.token, transport=transport) as client:
        uploader = Uploader(
            outbox, client, heartbeat=lambda: Heartbeat(model_version="1"), config=config
        )
        uploader.start()
        assert uploader.drain(timeout=30), "a poison record held up the outbox"
        fill(outbox, 5)  # the records behind it keep flowing
        assert uploader.drain(timeout=30)
        assert uploader.send_heartbeat()
        uploader.stop()
    stored = {f.id for f in server_frames(app)}
    assert poison not in stored and len(stored) == 34
    assert {ids[i] for i in range(0, 30, 7)} - {poison} <= {
        f.id for f in server_frames(app) if f.has_image
    }
    letters = outbox.dead_letters()
    assert [(d.record_id, d.kind, d.status) for d in letters] == [(poison, "record", 500)]
    assert "breaks the server" in letters[0].reason
    assert transport.calls["crash"] >= 2 + 4  # bisect_after rounds, then alone 4 times
    assert uploader.stats.dead_letters == 1 and uploader.held == 0
    beat = next(d for d in admin_client.get("/api/v1/devices").json() if d["name"] == "cam1")
    assert beat["heartbeat"]["dead_letters"] == 1
    assert beat["heartbeat"]["sent_at"] is not None


def test_the_heartbeat_answer_reaches_the_agent_while_a_drift_alarm_is_open(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    answers: list[HeartbeatAnswer] = []
    with device_http(live_server.url, device.token) as client:
        uploader = Uploader(
            outbox, client, heartbeat=lambda: Heartbeat(), on_answer=answers.append, config=FAST
        )
        assert uploader.send_heartbeat()
        with app_state(app).write_sessions() as session, session.begin():
            session.add(
                DriftAlarm(device_id=device.id, is_open=True, drifted_streak=2, clean_streak=0)
            )
        assert uploader.send_heartbeat()
    assert answers == [
        HeartbeatAnswer(drift_alarm=False, audit_rate_factor=1.0),
        HeartbeatAnswer(drift_alarm=True, audit_rate_factor=10.0),
    ]


def test_a_server_failing_every_record_sets_nothing_aside(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    """Every ingest answers 500 while /readyz answers: that is an outage, not poison. Nothing is
    dead-lettered however long it lasts, and everything goes out once the server recovers."""
    ids = fill(outbox, 40)
    transport = FaultTransport(httpx.HTTPTransport(), crash_ids=set(ids))
    config = replace(FAST, bisect_after=2, dead_letter_after=2, max_held=4)
    with device_http(live_server.url, device.token, transport=transport) as client:
        uploader = Uploader(outbox, client, config=config)
        uploader.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
        assert transport.calls["crash"] > 10
        assert outbox.dead_letters() == [] and uploader.held <= 4
        transport.crash_ids.clear()
        assert uploader.drain(timeout=30)
        uploader.stop()
    assert sorted(f.id for f in server_frames(app)) == sorted(ids)


def test_a_heartbeat_that_raises_never_stops_the_uploads(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    def broken() -> Heartbeat:
        raise RuntimeError("injected: heartbeat bug")

    with device_http(live_server.url, device.token) as client:
        uploader = Uploader(outbox, client, heartbeat=broken, config=FAST)
        uploader.start()
        ids = []
        for _ in range(5):
            ids += fill(outbox, 10)
            time.sleep(0.25)  # a heartbeat is due every 0.2 s
        assert uploader.drain(timeout=30)
        assert uploader.alive
        uploader.stop()
    assert sorted(f.id for f in server_frames(app)) == sorted(ids)
    assert uploader.stats.errors >= 2


def test_any_exception_in_a_round_is_counted_and_retried(
    app: FastAPI, device: DeviceCredentials, live_server: LiveServer, outbox: Outbox
) -> None:
    """A bug below the uploader (an exception that is not an httpx error) costs a retry."""
    ids = fill(outbox, 20)
    transport = FaultTransport(httpx.HTTPTransport(), raise_on_heartbeat=True)
    with device_http(live_server.url, device.token, transport=transport) as client:
        uploader = Uploader(
            outbox, client, heartbeat=lambda: Heartbeat(model_version="1"), config=FAST
        )
        uploader.start()
        time.sleep(0.5)
        ids += fill(outbox, 20)
        assert uploader.drain(timeout=30)
        assert uploader.alive
        uploader.stop()
    assert transport.calls["heartbeat_raised"] >= 2
    assert uploader.stats.errors >= 2
    assert sorted(f.id for f in server_frames(app)) == sorted(ids)


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
