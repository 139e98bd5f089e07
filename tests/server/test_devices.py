"""Devices over the API: registration and rotation (token shown once), disabling and enabling,
heartbeats and clock offsets, tokens hashed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import DeviceCredentials, app_state, count_rows, frame_batch
from visionloop.server.auth import token_sha256
from visionloop.server.models import Device


def test_admin_registers_a_device_whose_token_works(
    app: FastAPI, admin_client: TestClient, client: TestClient
) -> None:
    r = admin_client.post("/api/v1/devices", json={"name": "line2-cam1"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["device"]["name"] == "line2-cam1"
    ingest = client.post(
        "/api/v1/ingest", json=frame_batch(2), headers={"Authorization": f"Bearer {token}"}
    )
    assert ingest.json() == {"accepted": 2, "duplicates": 0}
    # The token is never listed again, and only its hash is stored.
    assert token not in admin_client.get("/api/v1/devices").text
    from sqlalchemy import text

    from support.db import app_state

    with app_state(app).engine.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256 FROM device_tokens")).scalars().all()
    assert token not in stored and token_sha256(token) in stored


def test_duplicate_device_name_is_409(admin_client: TestClient) -> None:
    assert admin_client.post("/api/v1/devices", json={"name": "cam9"}).status_code == 201
    r = admin_client.post("/api/v1/devices", json={"name": "cam9"})
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]


def test_bad_device_name_is_422(admin_client: TestClient) -> None:
    assert admin_client.post("/api/v1/devices", json={"name": ""}).status_code == 422
    assert admin_client.post("/api/v1/devices", json={"name": "x" * 129}).status_code == 422


@pytest.mark.parametrize(
    ("name", "character"),
    [
        ("cam\u202e1gpj.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("cam\u200b1", "U+200B ZERO WIDTH SPACE"),
        ("\u2066cam1\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("cam\u00ad1", "U+00AD SOFT HYPHEN"),
        ("cam\ue0001", "U+E000"),
        ("cam\n1", "U+000A"),
    ],
    ids=["rlo", "zero-width-space", "isolate", "soft-hyphen", "private-use", "newline"],
)
def test_invisible_and_bidi_characters_in_a_device_name_are_422(
    app: FastAPI, admin_client: TestClient, name: str, character: str
) -> None:
    """Issue 20, finding 12: a name must read as what it is."""
    r = admin_client.post("/api/v1/devices", json={"name": name})
    assert r.status_code == 422, r.text
    assert character in r.json()["detail"]
    assert count_rows(app, "devices") == 0


def test_device_names_are_nfkc_normalised_and_unique_as_read(admin_client: TestClient) -> None:
    """Fullwidth ``dev1`` (U+FF44 U+FF45 U+FF56 U+FF11) is ``dev1``: the second is a 409."""
    fullwidth = "\uff44\uff45\uff56\uff11"
    r = admin_client.post("/api/v1/devices", json={"name": fullwidth})
    assert r.status_code == 201, r.text
    assert r.json()["device"]["name"] == "dev1"
    r = admin_client.post("/api/v1/devices", json={"name": "dev1"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    assert [d["name"] for d in admin_client.get("/api/v1/devices").json()] == ["dev1"]
    # Ligatures and compatibility forms too: "ﬁx" (U+FB01) is "fix".
    assert (
        admin_client.post("/api/v1/devices", json={"name": "\ufb01x"}).json()["device"]["name"]
        == "fix"
    )
    assert admin_client.post("/api/v1/devices", json={"name": "fix"}).status_code == 409


def test_a_name_stored_before_normalisation_still_blocks_its_look_alike(
    app: FastAPI, admin_client: TestClient
) -> None:
    with app_state(app).write_sessions() as session, session.begin():
        session.add(Device(name="\uff44\uff45\uff56\uff12", created_at=datetime.now(UTC)))
    assert admin_client.post("/api/v1/devices", json={"name": "dev2"}).status_code == 409


def test_disabled_device_is_refused_everywhere(
    app: FastAPI, device: DeviceCredentials, device_client: TestClient, admin_client: TestClient
) -> None:
    # A request first, so the token sits in the server's device cache: disabling must clear it.
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 200
    r = admin_client.post(f"/api/v1/devices/{device.id}/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 403
    assert device_client.post("/api/v1/devices/heartbeat", json={}).status_code == 403
    assert count_rows(app, "frames") == 1
    # Disabling again is harmless.
    assert admin_client.post(f"/api/v1/devices/{device.id}/disable").status_code == 200


def test_disabling_an_unknown_device_is_404(admin_client: TestClient) -> None:
    assert admin_client.post("/api/v1/devices/999/disable").status_code == 404


def test_heartbeat_is_listed_with_last_seen(
    device_client: TestClient, viewer_client: TestClient
) -> None:
    beat = {
        "model_version": "3",
        "fps": 31.2,
        "latency_ms": {"preprocess": 1.2, "detect": 9.8},
        "queue_depths": {"capture": 1},
        "outbox_backlog": 17,
        "dropped_frames": 2,
    }
    assert device_client.post("/api/v1/devices/heartbeat", json=beat).status_code == 200
    [listed] = viewer_client.get("/api/v1/devices").json()
    assert listed["name"] == "cam1"
    assert listed["last_seen_at"] is not None
    assert listed["model_version"] == "3"
    assert listed["heartbeat"]["fps"] == 31.2
    assert listed["heartbeat"]["latency_ms"] == {"preprocess": 1.2, "detect": 9.8}
    assert listed["heartbeat"]["outbox_backlog"] == 17


def test_bad_heartbeat_is_422(device_client: TestClient) -> None:
    r = device_client.post("/api/v1/devices/heartbeat", json={"fps": -1, "colour": "red"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "fps" in detail and "colour" in detail


@pytest.mark.parametrize(
    "beat",
    [
        {"dead_letters": False},
        {"dead_letters": 1.5},
        {"outbox_backlog": True},
        {"counters": {"sampled": True}},
        {"sent_at": "0001-01-01T00:00:00Z"},
        {"sent_at": "2100-01-01T00:00:00Z"},
        {"sent_at": 0.5},
    ],
    ids=[
        "false-count",
        "fractional-count",
        "true-backlog",
        "bool-counter",
        "year-1",
        "2100",
        "num",
    ],
)
def test_heartbeat_counts_are_integers_and_its_clock_is_bounded(
    device_client: TestClient, viewer_client: TestClient, beat: dict[str, object]
) -> None:
    """Issue 20, finding 9: no bool read as a number, no clock offset of 63,932,325,650 s."""
    r = device_client.post("/api/v1/devices/heartbeat", json=beat)
    assert r.status_code == 422, r.text
    assert next(iter(beat)) in r.json()["detail"]
    assert viewer_client.get("/api/v1/devices").json()[0]["clock_offset_s"] is None


def test_rotation_refuses_the_old_token_at_once(
    app: FastAPI, device: DeviceCredentials, device_client: TestClient, admin_client: TestClient
) -> None:
    # A request first, so the old token sits in the server's device cache.
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 200
    r = admin_client.post(f"/api/v1/devices/{device.id}/rotate")
    assert r.status_code == 200, r.text
    new_token = r.json()["token"]
    assert new_token != device.token and r.json()["device"]["id"] == device.id
    old = device_client.post("/api/v1/ingest", json=frame_batch(1))
    assert old.status_code == 401
    assert device_client.post("/api/v1/devices/heartbeat", json={}).status_code == 401
    with TestClient(app, headers={"Authorization": f"Bearer {new_token}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(1)).json()["accepted"] == 1
    assert count_rows(app, "frames") == 2


def test_rotating_an_unknown_device_is_404(admin_client: TestClient) -> None:
    assert admin_client.post("/api/v1/devices/999/rotate").status_code == 404
    assert admin_client.post("/api/v1/devices/999/enable").status_code == 404


def test_enable_undoes_disable(
    device: DeviceCredentials, device_client: TestClient, admin_client: TestClient
) -> None:
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 200
    assert admin_client.post(f"/api/v1/devices/{device.id}/disable").status_code == 200
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 403
    r = admin_client.post(f"/api/v1/devices/{device.id}/enable")
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert r.json()["disabled_at"] is None
    assert device_client.post("/api/v1/ingest", json=frame_batch(1)).status_code == 200
    # Enabling an enabled device is harmless.
    assert admin_client.post(f"/api/v1/devices/{device.id}/enable").status_code == 200


def test_clock_offset_is_listed(device_client: TestClient, viewer_client: TestClient) -> None:
    [listed] = viewer_client.get("/api/v1/devices").json()
    assert listed["clock_offset_s"] is None  # no heartbeat yet
    assert device_client.post("/api/v1/devices/heartbeat", json={}).status_code == 200
    assert viewer_client.get("/api/v1/devices").json()[0]["clock_offset_s"] is None  # no sent_at
    # A device whose clock is an hour behind the server's.
    sent_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    beat = {"sent_at": sent_at, "dead_letters": 2}
    assert device_client.post("/api/v1/devices/heartbeat", json=beat).status_code == 200
    [listed] = viewer_client.get("/api/v1/devices").json()
    assert listed["clock_offset_s"] == pytest.approx(3600, abs=5)
    assert listed["heartbeat"]["dead_letters"] == 2
