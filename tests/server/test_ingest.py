"""POST /api/v1/ingest: idempotency, whole-batch validation, limits and device authentication."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import (
    DeviceCredentials,
    add_device,
    app_state,
    count_rows,
    frame_batch,
    frame_record,
)
from visionloop.config import Settings

INGEST = "/api/v1/ingest"


def _assert_nothing_stored(app: FastAPI) -> None:
    assert count_rows(app, "frames") == 0
    assert count_rows(app, "detections") == 0


def test_same_batch_twice_is_stored_once(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    body = frame_batch(5, detections=3)
    first = device_client.post(INGEST, json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 5, "duplicates": 0}
    second = device_client.post(INGEST, json=body)
    assert second.json() == {"accepted": 0, "duplicates": 5}
    assert count_rows(app, "frames") == 5
    assert count_rows(app, "detections") == 15
    listed = viewer_client.get("/api/v1/frames").json()["items"]
    assert {f["id"] for f in listed} == {f["id"] for f in body["frames"]}


def test_repeated_frame_within_a_batch_is_a_duplicate(
    app: FastAPI, device_client: TestClient
) -> None:
    frame = frame_record(detections=2)
    other = frame_record(detections=1)
    r = device_client.post(INGEST, json={"frames": [frame, other, frame]})
    assert r.json() == {"accepted": 2, "duplicates": 1}
    assert count_rows(app, "detections") == 3


def test_overlapping_batches_store_only_new_frames(app: FastAPI, device_client: TestClient) -> None:
    body = frame_batch(4)
    device_client.post(INGEST, json={"frames": body["frames"][:3]})
    r = device_client.post(INGEST, json={"frames": body["frames"][1:]})
    assert r.json() == {"accepted": 1, "duplicates": 2}
    assert count_rows(app, "frames") == 4


def test_stored_frame_matches_the_record(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    record = frame_record(detections=2, confidence=0.55, sample_reason="uncertain")
    device_client.post(INGEST, json={"frames": [record]})
    got = viewer_client.get(f"/api/v1/frames/{record['id']}").json()
    assert got["id"] == record["id"]
    assert got["sample_reason"] == "uncertain"
    assert got["stats"] == record["stats"]
    assert got["width"] == 640 and got["height"] == 480
    assert got["detection_count"] == 2 and got["max_confidence"] == pytest.approx(0.55)
    boxes = sorted(tuple(d["xyxyn"]) for d in got["detections"])
    assert boxes == sorted(tuple(d["xyxyn"]) for d in record["detections"])


def test_frame_from_another_device_with_same_id_is_a_duplicate(
    app: FastAPI, device_client: TestClient
) -> None:
    record = frame_record()
    device_client.post(INGEST, json={"frames": [record]})
    other = add_device(app, "cam2")
    r = device_client.post(INGEST, json={"frames": [record]}, headers=other.headers)
    assert r.json() == {"accepted": 0, "duplicates": 1}


def test_frames_without_detections_are_accepted(app: FastAPI, device_client: TestClient) -> None:
    r = device_client.post(INGEST, json=frame_batch(3, detections=0))
    assert r.json() == {"accepted": 3, "duplicates": 0}
    assert count_rows(app, "detections") == 0


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid two-frame batch whose second frame has ``path`` (dotted, ints index) set to
    ``value`` (``...`` deletes the key)."""
    body = frame_batch(2)
    target: Any = body["frames"][1]
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        target = target[part]
    if value is ...:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return body


BAD_BATCHES: list[Any] = [
    pytest.param(_with("id", "not-a-uuid"), "frames[1].id", id="bad-uuid"),
    pytest.param(_with("id", 12345), "frames[1].id", id="uuid-wrong-type"),
    pytest.param(_with("width", "640"), "frames[1].width", id="width-as-string"),
    pytest.param(_with("width", 640.5), "frames[1].width", id="width-float"),
    pytest.param(_with("width", -640), "frames[1].width", id="negative-width"),
    pytest.param(_with("height", 0), "frames[1].height", id="zero-height"),
    pytest.param(_with("width", 10_000_000), "frames[1].width", id="absurd-width"),
    pytest.param(_with("captured_at", "yesterday"), "frames[1].captured_at", id="bad-time"),
    pytest.param(_with("captured_at", "2026-11-26T10:00:00"), "frames[1].captured_at", id="naive"),
    pytest.param(_with("model_version", ...), "frames[1].model_version", id="missing-field"),
    pytest.param(_with("stats", ...), "frames[1].stats", id="missing-stats"),
    pytest.param(_with("colour", "red"), "frames[1].colour", id="unknown-field"),
    pytest.param(_with("stats.glare", 0.1), "frames[1].stats.glare", id="unknown-nested-field"),
    pytest.param(_with("stats.brightness", 1.5), "frames[1].stats.brightness", id="brightness>1"),
    pytest.param(_with("sample_reason", "bored"), "frames[1].sample_reason", id="bad-reason"),
    pytest.param(
        _with("detections.0.confidence", 1.01),
        "frames[1].detections[0].confidence",
        id="confidence>1",
    ),
    pytest.param(
        _with("detections.0.confidence", -0.1),
        "frames[1].detections[0].confidence",
        id="confidence<0",
    ),
    pytest.param(
        _with("detections.0.confidence", "0.5"),
        "frames[1].detections[0].confidence",
        id="confidence-as-string",
    ),
    pytest.param(
        _with("detections.0.xyxyn", [0.1, 0.2, 1.2, 0.4]),
        "frames[1].detections[0].xyxyn",
        id="box-outside",
    ),
    pytest.param(
        _with("detections.0.xyxyn", [0.5, 0.2, 0.3, 0.4]),
        "frames[1].detections[0].xyxyn",
        id="box-x2<x1",
    ),
    pytest.param(
        _with("detections.0.xyxyn", [0.1, 0.5, 0.3, 0.4]),
        "frames[1].detections[0].xyxyn",
        id="box-y2<y1",
    ),
    pytest.param(
        _with("detections.0.xyxyn", [0.1, 0.2, 0.3]),
        "frames[1].detections[0].xyxyn",
        id="box-3-values",
    ),
    pytest.param(
        _with("detections.0.class_name", ""), "frames[1].detections[0].class_name", id="no-class"
    ),
    pytest.param(
        _with("detections.0.class_id", -1), "frames[1].detections[0].class_id", id="neg-class"
    ),
    pytest.param({"frames": []}, "frames", id="empty-batch"),
    pytest.param({"frames": "lots"}, "frames", id="frames-not-a-list"),
    pytest.param({}, "frames", id="no-frames-key"),
    pytest.param([], "body", id="body-not-an-object"),
]


@pytest.mark.parametrize(("body", "loc"), BAD_BATCHES)
def test_invalid_batch_is_rejected_whole(
    app: FastAPI, device_client: TestClient, body: Any, loc: str
) -> None:
    r = device_client.post(INGEST, json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert loc in payload["detail"]
    assert any(e["loc"].startswith(loc) for e in payload["errors"])
    _assert_nothing_stored(app)


@pytest.mark.parametrize(
    "captured_at",
    [
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "1970-01-01T04:59:59+05:00",  # 1969-12-31T23:59:59Z
        "2099-12-31T23:59:59-05:00",  # 2100-01-01T04:59:59Z
    ],
    ids=["year-1", "year-9999", "just-before-1970-utc", "just-after-2100-utc"],
)
def test_captured_at_outside_1970_2100_is_422(
    app: FastAPI, device_client: TestClient, captured_at: str
) -> None:
    body = _with("captured_at", captured_at)
    r = device_client.post(INGEST, json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert "frames[1].captured_at" in payload["detail"]
    assert payload["bad_frames"] == [{"index": 1, "id": body["frames"][1]["id"]}]
    _assert_nothing_stored(app)


@pytest.mark.parametrize(
    "captured_at", ["1970-01-01T00:00:00Z", "2099-12-31T23:59:59.999+00:00"], ids=["min", "max"]
)
def test_captured_at_at_the_bounds_is_stored(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient, captured_at: str
) -> None:
    record = frame_record(captured_at=None)
    record["captured_at"] = captured_at
    assert device_client.post(INGEST, json={"frames": [record]}).status_code == 200
    got = viewer_client.get(f"/api/v1/frames/{record['id']}").json()
    assert datetime.fromisoformat(got["captured_at"]) == datetime.fromisoformat(captured_at)


def test_server_records_its_own_received_at(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    # A device clock a year behind: captured_at is the device's word, received_at the server's.
    record = frame_record(captured_at=datetime.now(UTC) - timedelta(days=365))
    before = datetime.now(UTC)
    assert device_client.post(INGEST, json={"frames": [record]}).status_code == 200
    got = viewer_client.get(f"/api/v1/frames/{record['id']}").json()
    received = datetime.fromisoformat(got["received_at"])
    assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
    assert (
        viewer_client.get("/api/v1/frames").json()["items"][0]["received_at"] == got["received_at"]
    )


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e400"], ids=["nan", "inf", "-inf", "overflow"]
)
@pytest.mark.parametrize("field", ["confidence", "x1"])
def test_non_finite_numbers_are_rejected(
    app: FastAPI, device_client: TestClient, number: str, field: str
) -> None:
    # NaN and Infinity are not JSON, but some encoders (Python's json) write them anyway.
    body = json.dumps(frame_batch(1, detections=1))
    if field == "confidence":
        raw = body.replace('"confidence": 0.8', f'"confidence": {number}')
    else:
        raw = body.replace('"xyxyn": [0.1,', f'"xyxyn": [{number},')
    assert raw != body
    r = device_client.post(INGEST, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert r.json()["detail"]
    _assert_nothing_stored(app)


def test_bad_frames_are_named_by_index_and_id(app: FastAPI, device_client: TestClient) -> None:
    body = frame_batch(4)
    body["frames"][1]["width"] = -1
    body["frames"][3]["detections"][0]["confidence"] = 2
    r = device_client.post(INGEST, json=body)
    assert r.status_code == 422
    assert r.json()["bad_frames"] == [
        {"index": 1, "id": body["frames"][1]["id"]},
        {"index": 3, "id": body["frames"][3]["id"]},
    ]
    _assert_nothing_stored(app)


@pytest.mark.parametrize(
    "raw",
    [b'{"frames": [', b"not json at all", b"", b'{"frames": [{"id": "x",}]}'],
    ids=["truncated", "text", "empty", "trailing-comma"],
)
def test_malformed_json_is_a_400(app: FastAPI, device_client: TestClient, raw: bytes) -> None:
    r = device_client.post(INGEST, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("malformed JSON")
    _assert_nothing_stored(app)


def test_batch_over_the_frame_limit_is_413(app: FastAPI, device_client: TestClient) -> None:
    r = device_client.post(INGEST, json=frame_batch(1001, detections=0))
    assert r.status_code == 413, r.text
    assert "1000" in r.json()["detail"]
    _assert_nothing_stored(app)


def test_batch_at_the_frame_limit_is_accepted(app: FastAPI, device_client: TestClient) -> None:
    r = device_client.post(INGEST, json=frame_batch(1000, detections=0))
    assert r.json() == {"accepted": 1000, "duplicates": 0}


def test_body_over_the_byte_limit_is_413(app: FastAPI, device_client: TestClient) -> None:
    raw = b'{"frames": [' + b" " * (8 * 1024 * 1024) + b"]}"
    r = device_client.post(INGEST, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["detail"]
    _assert_nothing_stored(app)


def test_chunked_body_over_the_byte_limit_is_413(app: FastAPI, device_client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"frames": ['
        for _ in range(9):
            yield b" " * (1024 * 1024)
        yield b"]}"

    r = device_client.post(INGEST, content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    _assert_nothing_stored(app)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer vld_wrong"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer "}, 401),
    ],
    ids=["no-token", "wrong-token", "basic-auth", "empty-bearer"],
)
def test_ingest_needs_a_valid_device_token(
    app: FastAPI, client: TestClient, headers: dict[str, str], status: int
) -> None:
    r = client.post(INGEST, json=frame_batch(2), headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    _assert_nothing_stored(app)


def test_disabled_device_is_refused(app: FastAPI, client: TestClient) -> None:
    disabled = add_device(app, "old-cam", disabled=True)
    r = client.post(INGEST, json=frame_batch(2), headers=disabled.headers)
    assert r.status_code == 403, r.text
    assert "disabled" in r.json()["detail"]
    _assert_nothing_stored(app)


def test_signed_in_person_cannot_ingest(app: FastAPI, admin_client: TestClient) -> None:
    r = admin_client.post(INGEST, json=frame_batch(2))
    assert r.status_code == 403, r.text
    _assert_nothing_stored(app)


def test_ingest_marks_the_device_seen(
    app: FastAPI, device: DeviceCredentials, device_client: TestClient, viewer_client: TestClient
) -> None:
    assert viewer_client.get("/api/v1/devices").json()[0]["last_seen_at"] is None
    device_client.post(INGEST, json=frame_batch(1))
    assert viewer_client.get("/api/v1/devices").json()[0]["last_seen_at"] is not None


def test_ingest_counts_in_metrics(device_client: TestClient, client: TestClient) -> None:
    body = frame_batch(3, detections=2)
    device_client.post(INGEST, json=body)
    device_client.post(INGEST, json=body)
    text = client.get("/metrics").text
    assert "visionloop_frames_ingested_total 3.0" in text
    assert "visionloop_detections_ingested_total 6.0" in text
    assert "visionloop_frames_duplicate_total 3.0" in text


def test_frame_ids_are_uuids_of_any_case(app: FastAPI, device_client: TestClient) -> None:
    frame_id = uuid.uuid4()
    upper = frame_record(frame_id=str(frame_id).upper())
    lower = frame_record(frame_id=str(frame_id))
    r = device_client.post(INGEST, json={"frames": [upper, lower]})
    assert r.json() == {"accepted": 1, "duplicates": 1}


def test_concurrent_overlapping_batches_store_each_frame_once(
    app: FastAPI, settings: Settings, device: DeviceCredentials
) -> None:
    """Four clients, two of them through a second app on the same database (like a second server
    process), post overlapping batches at once: every frame is stored once and counted once."""
    from visionloop.server.app import create_app

    frames = frame_batch(120, detections=2)["frames"]
    batches = [frames[i : i + 40] for i in range(0, 120, 20)]  # each frame in two batches
    second = create_app(settings)
    # FastAPI 0.16x builds each route's dependency graph lazily on its first match; two threads
    # matching a new app at once race inside pydantic. One request per app first, as uvicorn's
    # single event loop would have serialised them.
    for target in (app, second):
        with TestClient(target, headers=device.headers) as c:
            c.post(INGEST, json={"frames": []})
    results: list[dict[str, int]] = []
    errors: list[str] = []

    def post(target: FastAPI, mine: list[list[dict[str, Any]]]) -> None:
        with TestClient(target, headers=device.headers) as c:
            for b in mine:
                r = c.post(INGEST, json={"frames": b})
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    results.append(r.json())

    threads = [
        threading.Thread(target=post, args=(target, batches[k::2]))
        for target in (app, second)
        for k in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    app_state(second).engine.dispose()
    assert errors == []
    assert sum(r["accepted"] for r in results) == 120
    assert sum(r["duplicates"] for r in results) == 2 * sum(len(b) for b in batches) - 120
    assert count_rows(app, "frames") == 120
    assert count_rows(app, "detections") == 240
