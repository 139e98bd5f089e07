"""What the fuzz test found, pinned: odd but well-formed input is a 4xx on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

BIG = "7686441936325879196430169538560"  # over 64 bits


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/auth/login", {"json": {"username": "a\x00", "password": "xxxxxxxx"}}),
        ("POST", "/api/v1/devices", {"json": {"name": "a\x00b"}}),
        ("POST", f"/api/v1/devices/{BIG}/disable", {}),
        ("POST", "/api/v1/devices/36757187706/enable", {}),  # over 32 bits: the column's width
        ("GET", "/api/v1/frames", {"params": {"device_id": "9223372036854775808"}}),
        ("GET", "/api/v1/frames", {"params": {"since": "0001-01-01T00:00:00+05:00"}}),
        ("GET", "/api/v1/frames", {"params": {"until": "9999-12-31T23:59:59-05:00"}}),
        ("GET", "/api/v1/jobs/1124286851909265/log", {}),
        ("POST", f"/api/v1/jobs/{BIG}/cancel", {}),
    ],
    ids=[
        "login-nul",
        "device-name-nul",
        "device-id-over-64-bits",
        "device-id-over-32-bits",
        "frames-device-id",
        "frames-since-year-1",
        "frames-until-year-9999",
        "job-id-log",
        "job-id-cancel",
    ],
)
def test_odd_input_is_a_422(
    admin_client: TestClient, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    r = admin_client.request(method, path, **kwargs)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_nul_in_a_text_filter_is_not_a_server_error(admin_client: TestClient) -> None:
    r = admin_client.get("/api/v1/frames", params={"class_name": "\x00"})
    assert r.status_code in (200, 422), r.text


def test_nul_in_a_frame_record_is_a_422_on_both_databases(device_client: TestClient) -> None:
    from support.db import frame_record

    record = frame_record(model_version="a\x00")
    r = device_client.post("/api/v1/ingest", json={"frames": [record]})
    assert r.status_code == 422, r.text
    assert r.json()["bad_frames"] == [{"index": 0, "id": record["id"]}]
