"""The labeling queue's hygiene over HTTP, on SQLite and PostgreSQL: near-duplicates of a
device's recent tasks are counted, not queued; past the per-device cap the lowest-priority tasks
expire (frames kept); the age term puts recent frames first, more so while a drift alarm is
open."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from support.db import add_device, app_state, count_rows, frame_record
from support.labeling import ProductionRegistry
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.store import frames as frame_store

CSRF = {"X-Visionloop-CSRF": "1"}


@pytest.fixture(autouse=True)
def _catalog(app: FastAPI) -> None:
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: ProductionRegistry()
    )


def jpeg(seed: int) -> bytes:
    """A 64x48 picture of its own (random 8x6 blocks): other seeds are far in dHash."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (64, 48))
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def send_frame(
    client: TestClient, *, seed: int, reason: str | None = "uncertain", confidence: float = 0.5
) -> str:
    """Ingest one frame with one detection and upload its picture (sampled frames only)."""
    record = frame_record(
        sample_reason=reason, confidence=confidence, detections=1, width=64, height=48
    )
    r = client.post("/api/v1/ingest", json={"frames": [record]})
    assert r.status_code == 200, r.text
    if reason is not None:
        r = client.put(f"/api/v1/frames/{record['id']}/image", content=jpeg(seed))
        assert r.status_code == 200, r.text
    return str(record["id"])


def lease(client: TestClient) -> dict[str, Any]:
    r = client.post("/api/v1/labeling/next", headers=CSRF)
    assert r.status_code == 200, r.text
    task: dict[str, Any] = r.json()["task"]
    return task


def submit(client: TestClient, task_id: int) -> int:
    r = client.post(f"/api/v1/labeling/tasks/{task_id}/submit", json={"labels": []}, headers=CSRF)
    return r.status_code


def _stats(client: TestClient) -> dict[str, Any]:
    r = client.get("/api/v1/labeling/stats")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _set(app: FastAPI, **values: Any) -> None:
    for key, value in values.items():
        setattr(app_state(app).settings, key, value)


def _sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    with app_state(app).write_sessions() as session, session.begin():
        result = session.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def test_near_duplicates_are_counted_not_queued(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    _set(app, labeling_duplicate_bits=5, labeling_duplicate_window_s=3600.0)
    send_frame(device_client, seed=7)
    send_frame(device_client, seed=7)  # the same picture again (a replayed line)
    send_frame(device_client, seed=8)  # another picture
    assert count_rows(app, "label_tasks") == 2
    assert count_rows(app, "frames") == 3  # the duplicate frame is kept, only not queued
    stats = _stats(reviewer_client)
    assert stats["duplicates_suppressed"] == 1
    [mine] = stats["devices"]
    assert (mine["open"], mine["expired"], mine["duplicates"]) == (2, 0, 1)

    # A recently done task still suppresses its near-duplicates...
    while (r := reviewer_client.post("/api/v1/labeling/next", headers=CSRF)).status_code == 200:
        assert submit(reviewer_client, r.json()["task"]["id"]) == 200
    send_frame(device_client, seed=7)
    assert _stats(reviewer_client)["duplicates_suppressed"] == 2
    # ...within its window only.
    _set(app, labeling_duplicate_window_s=0.0)
    send_frame(device_client, seed=7)
    assert count_rows(app, "label_tasks") == 3

    # Another device's same picture is its own.
    other = add_device(app, "cam2")
    with TestClient(app, headers={"Authorization": f"Bearer {other.token}"}) as cam2:
        send_frame(cam2, seed=8)
    assert count_rows(app, "label_tasks") == 4
    by_device = {d["device_id"]: d for d in _stats(reviewer_client)["devices"]}
    assert by_device[other.id]["duplicates"] == 0


def test_duplicates_off_queues_every_picture(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    _set(app, labeling_duplicate_bits=-1)
    send_frame(device_client, seed=7)
    send_frame(device_client, seed=7)
    assert count_rows(app, "label_tasks") == 2
    assert _stats(reviewer_client)["duplicates_suppressed"] == 0


def test_tasks_expire_at_the_per_device_cap(
    app: FastAPI,
    device_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
) -> None:
    _set(app, labeling_max_open_per_device=3, labeling_age_hours=0.0)
    # Uncertainty 1 - |2c - 1|: 0.2, 1.0, 0.6, 0.4, 0.8 in that order.
    confidences = [0.1, 0.5, 0.3, 0.2, 0.4]
    for seed, confidence in enumerate(confidences):
        send_frame(device_client, seed=seed, confidence=confidence)
    rows = _sql(app, "SELECT status, priority FROM label_tasks ORDER BY id")
    assert [s for s, _ in rows] == ["expired", "open", "open", "expired", "open"]
    assert all(
        when is not None
        for (when,) in _sql(app, "SELECT expired_at FROM label_tasks WHERE status = 'expired'")
    )
    assert count_rows(app, "frames") == 5  # frames are never deleted with their tasks
    stats = _stats(reviewer_client)
    assert stats["tasks"]["uncertain"]["expired"] == 2
    assert stats["totals"]["open"] == 3
    assert stats["devices"][0]["expired"] == 2
    # A manual task is never expired and comes first.
    frame = send_frame(device_client, reason=None, seed=9)
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        assert frame_store.set_frame_image(
            session,
            frame_id=uuid.UUID(frame),
            sha256=state.blobs.put(jpeg(9)),
            content_type="image/jpeg",
        )
    r = reviewer_client.post("/api/v1/labeling/tasks", json={"frame_id": frame}, headers=CSRF)
    assert r.status_code == 201, r.text
    send_frame(device_client, seed=10, confidence=0.45)  # 0.9: the 0.6 task expires
    assert [s for (s,) in _sql(app, "SELECT status FROM label_tasks ORDER BY id")] == [
        "expired",
        "open",
        "expired",
        "expired",
        "open",
        "open",
        "open",
    ]
    assert lease(reviewer_client)["reason"] == "manual"
    # An admin can put an expired task back.
    expired_id = _sql(app, "SELECT id FROM label_tasks WHERE status = 'expired' ORDER BY id")[0][0]
    r = admin_client.post(f"/api/v1/labeling/tasks/{expired_id}/reopen", headers=CSRF)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open"


@pytest.mark.parametrize("alarm", [False, True], ids=["no-alarm", "drift-alarm"])
def test_the_age_term_puts_recent_frames_first(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, alarm: bool
) -> None:
    _set(app, labeling_age_hours=6.0, labeling_drift_age_hours=0.5, labeling_duplicate_bits=-1)
    send_frame(device_client, seed=1, confidence=0.5)  # the most uncertain: 1.0
    # made an hour ago
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    _sql(app, "UPDATE label_tasks SET created_at = :t", t=an_hour_ago)
    if alarm:
        device_id = _sql(app, "SELECT device_id FROM label_tasks")[0][0]
        _sql(
            app,
            "INSERT INTO drift_alarms (device_id, is_open, opened_at, drifted_streak, "
            "clean_streak) VALUES (:d, :o, :t, 2, 0)",
            d=device_id,
            o=True,
            t=an_hour_ago,
        )
    send_frame(device_client, seed=2, confidence=0.8)  # less uncertain (0.4), an hour newer
    (old_p, old_bonus), (new_p, new_bonus) = _sql(
        app, "SELECT priority, age_bonus FROM label_tasks ORDER BY id"
    )
    assert old_bonus == pytest.approx(0.0)
    # The clock gained 1 per 6 hours (per half hour while an alarm is open).
    assert new_bonus == pytest.approx(2.0 if alarm else 1 / 6, rel=0.01)
    assert new_p == pytest.approx(0.4 + new_bonus, rel=0.01)
    first = lease(reviewer_client)
    if alarm:  # recent frames outrank the backlog's most uncertain one
        assert new_p > old_p
        assert first["priority"] == pytest.approx(new_p)
    else:  # an hour is not enough to outrank a much more uncertain frame
        assert old_p > new_p
        assert first["priority"] == pytest.approx(old_p)
