"""Reading frames: filters, keyset pagination (newest first) and one frame with its detections."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import add_device, frame_record

FRAMES = "/api/v1/frames"
T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


def _ingest(client: TestClient, frames: list[dict[str, Any]], **kwargs: Any) -> None:
    r = client.post("/api/v1/ingest", json={"frames": frames}, **kwargs)
    assert r.status_code == 200, r.text


def _ids(page: dict[str, Any]) -> list[str]:
    return [f["id"] for f in page["items"]]


def test_pages_walk_every_frame_once_newest_first(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    frames = [frame_record(captured_at=T0 + timedelta(seconds=i)) for i in range(23)]
    # Three frames share a timestamp: the order among them must still be total and stable.
    for f in frames[5:8]:
        f["captured_at"] = frames[5]["captured_at"]
    _ingest(device_client, frames)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = viewer_client.get(FRAMES, params=params).json()
        seen += _ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    times = [f["captured_at"] for f in frames]
    by_id = dict(zip([f["id"] for f in frames], times, strict=True))
    assert [by_id[i] for i in seen] == sorted(times, reverse=True)


def test_page_ending_exactly_at_the_last_frame_has_no_cursor(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    _ingest(device_client, [frame_record(captured_at=T0 + timedelta(seconds=i)) for i in range(4)])
    page = viewer_client.get(FRAMES, params={"limit": 4}).json()
    assert len(page["items"]) == 4 and page["next_cursor"] is None


def test_frames_arriving_between_pages_do_not_shift_them(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    old = [frame_record(captured_at=T0 + timedelta(seconds=i)) for i in range(6)]
    _ingest(device_client, old)
    first = viewer_client.get(FRAMES, params={"limit": 3}).json()
    _ingest(device_client, [frame_record(captured_at=T0 + timedelta(hours=1))])
    second = viewer_client.get(FRAMES, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert set(_ids(first)) | set(_ids(second)) == {f["id"] for f in old}


def test_filters(app: FastAPI, device_client: TestClient, viewer_client: TestClient) -> None:
    other = add_device(app, "cam2")
    base = dict(detections=1)
    a = frame_record(captured_at=T0, class_names=("scratch",), confidence=0.9, **base)
    b = frame_record(
        captured_at=T0 + timedelta(minutes=1),
        class_names=("dent",),
        confidence=0.5,
        sample_reason="uncertain",
        **base,
    )
    c = frame_record(captured_at=T0 + timedelta(minutes=2), detections=0)
    d = frame_record(captured_at=T0 + timedelta(minutes=3), class_names=("dent",), confidence=0.2)
    _ingest(device_client, [a, b, c])
    _ingest(device_client, [d], headers=other.headers)

    def ids(**params: Any) -> set[str]:
        r = viewer_client.get(FRAMES, params=params)
        assert r.status_code == 200, r.text
        return set(_ids(r.json()))

    assert ids() == {a["id"], b["id"], c["id"], d["id"]}
    assert ids(device_id=other.id) == {d["id"]}
    assert ids(class_name="dent") == {b["id"], d["id"]}
    assert ids(class_name="dent", min_confidence=0.4) == {b["id"]}
    assert ids(min_confidence=0.6) == {a["id"]}
    assert ids(max_confidence=0.3) == {d["id"]}
    assert ids(min_confidence=0.4, max_confidence=0.6) == {b["id"]}
    assert ids(sampled="true") == {b["id"]}
    assert ids(since=(T0 + timedelta(minutes=1)).isoformat()) == {b["id"], c["id"], d["id"]}
    assert ids(until=(T0 + timedelta(minutes=1)).isoformat()) == {a["id"]}
    assert ids(class_name="crack") == set()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 501}, "query.limit"),
        ({"min_confidence": 1.5}, "query.min_confidence"),
        ({"since": "2026-11-26T10:00:00"}, "time zone"),
        ({"since": "last tuesday"}, "query.since"),
        ({"device_id": "cam1"}, "query.device_id"),
        ({"since": "0.5"}, "not a number"),  # issue 20, finding 9: not Unix seconds
        ({"until": "1700000000"}, "not a number"),
    ],
    ids=[
        "bad-cursor",
        "limit-0",
        "limit-501",
        "conf>1",
        "naive-since",
        "bad-since",
        "device-name",
        "numeric-since",
        "numeric-until",
    ],
)
def test_bad_list_parameters_are_422(
    viewer_client: TestClient, params: dict[str, Any], needle: str
) -> None:
    r = viewer_client.get(FRAMES, params=params)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_one_frame_with_its_detections(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    record = frame_record(detections=3)
    record["detections"][1]["confidence"] = 0.95
    _ingest(device_client, [record])
    got = viewer_client.get(f"{FRAMES}/{record['id']}").json()
    assert got["detection_count"] == 3
    assert [d["confidence"] for d in got["detections"]] == [0.95, 0.8, 0.8]
    assert got["has_image"] is False and got["image_url"] is None
    assert got["captured_at"] == record["captured_at"].replace("+00:00", "Z")


def test_source_index_is_stored_and_returned(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    numbered, plain = frame_record(), frame_record(captured_at=T0)
    numbered["source_index"] = 2**40
    _ingest(device_client, [numbered, plain])
    assert viewer_client.get(f"{FRAMES}/{numbered['id']}").json()["source_index"] == 2**40
    listed = {f["id"]: f["source_index"] for f in viewer_client.get(FRAMES).json()["items"]}
    assert listed == {numbered["id"]: 2**40, plain["id"]: None}


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, "7"], ids=["negative", "too-big", "float", "text"])
def test_bad_source_index_is_422(device_client: TestClient, bad: object) -> None:
    record = frame_record()
    record["source_index"] = bad
    r = device_client.post("/api/v1/ingest", json={"frames": [record]})
    assert r.status_code == 422, r.text


def test_unknown_frame_is_404(viewer_client: TestClient) -> None:
    r = viewer_client.get(f"{FRAMES}/{uuid.uuid4()}")
    assert r.status_code == 404
    assert "no frame" in r.json()["detail"]


def test_frame_id_must_be_a_uuid(viewer_client: TestClient) -> None:
    r = viewer_client.get(f"{FRAMES}/12")
    assert r.status_code == 422
    assert "frame_id" in r.json()["detail"]


def test_times_come_back_in_utc(device_client: TestClient, viewer_client: TestClient) -> None:
    record = frame_record()
    record["captured_at"] = "2026-11-26T12:00:00.250+02:00"
    _ingest(device_client, [record])
    got = viewer_client.get(f"{FRAMES}/{record['id']}").json()
    assert got["captured_at"] == "2026-11-26T10:00:00.250000Z"
