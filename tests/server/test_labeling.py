"""The labeling queue over HTTP: tasks from sampled frames, leasing, submitting, stats, classes."""

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

from support.db import app_state, count_rows, frame_record, signed_in_client
from support.labeling import ProductionRegistry
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.store import frames as frame_store

CSRF = {"X-Visionloop-CSRF": "1"}
CLASSES = ("scratch", "dent", "crack", "stain")
REGISTERED_AT = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _catalog(app: FastAPI) -> None:
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: ProductionRegistry(CLASSES)
    )


def jpeg(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (64, 48))
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def send_frame(
    device_client: TestClient,
    *,
    reason: str | None = "uncertain",
    confidence: float = 0.5,
    detections: int = 1,
    seed: int = 0,
    image: bool = True,
) -> str:
    """Ingest one frame (and upload its image); returns its id."""
    record = frame_record(
        sample_reason=reason, confidence=confidence, detections=detections, width=64, height=48
    )
    r = device_client.post("/api/v1/ingest", json={"frames": [record]})
    assert r.status_code == 200, r.text
    if image:
        r = device_client.put(f"/api/v1/frames/{record['id']}/image", content=jpeg(seed))
        assert r.status_code == 200, r.text
    return str(record["id"])


def unsampled_frame_with_image(app: FastAPI, device_client: TestClient, seed: int = 0) -> str:
    """A frame with an image but no task, as `dataset import` makes them (the image route takes
    images of sampled frames only, and those get their task at once)."""
    frame_id = send_frame(device_client, reason=None, image=False, seed=seed)
    state = app_state(app)
    sha256 = state.blobs.put(jpeg(seed))
    with state.write_sessions() as session, session.begin():
        assert frame_store.set_frame_image(
            session, frame_id=uuid.UUID(frame_id), sha256=sha256, content_type="image/jpeg"
        )
    return frame_id


def lease(client: TestClient) -> dict[str, Any]:
    r = client.post("/api/v1/labeling/next", headers=CSRF)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def submit(client: TestClient, task_id: int, labels: list[dict[str, Any]]) -> Any:
    return client.post(
        f"/api/v1/labeling/tasks/{task_id}/submit", json={"labels": labels}, headers=CSRF
    )


def test_sampled_frame_becomes_one_task_when_its_image_arrives(
    app: FastAPI, device_client: TestClient, viewer_client: TestClient
) -> None:
    frame_id = send_frame(device_client)
    send_frame(device_client, reason=None, image=False, seed=1)  # not sampled: takes no image
    send_frame(device_client, image=False, seed=2)  # no image yet: no task
    assert count_rows(app, "label_tasks") == 1
    r = device_client.put(f"/api/v1/frames/{frame_id}/image", content=jpeg(0))  # again
    assert r.status_code == 200
    assert count_rows(app, "label_tasks") == 1
    stats = viewer_client.get("/api/v1/labeling/stats").json()
    assert stats["tasks"] == {
        "uncertain": {"open": 1, "leased": 0, "done": 0, "skipped": 0, "expired": 0}
    }


def test_ingest_lease_submit_path(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, viewer_client: TestClient
) -> None:
    frame_id = send_frame(device_client, confidence=0.55, detections=2)
    body = lease(reviewer_client)
    task = body["task"]
    assert set(task) == {
        "id",
        "frame_id",
        "reason",
        "priority",
        "lease_expires_at",
        "image_url",
        "width",
        "height",
        "model_version",
        "predictions",
    }
    assert task["frame_id"] == frame_id
    assert task["reason"] == "uncertain"
    assert task["priority"] == pytest.approx(0.9)  # 1 - |2 * 0.55 - 1|
    assert (task["width"], task["height"], task["model_version"]) == (64, 48, "1")
    assert task["image_url"] == f"/api/v1/frames/{frame_id}/image"
    assert reviewer_client.get(task["image_url"]).status_code == 200
    lease_end = datetime.fromisoformat(task["lease_expires_at"])
    assert timedelta(seconds=590) < lease_end - datetime.now(UTC) <= timedelta(seconds=600)
    assert body["classes"] == [{"id": i, "name": n} for i, n in enumerate(CLASSES)]
    preds = task["predictions"]
    assert [(p["class_id"], p["class_name"]) for p in preds] == [(0, "scratch"), (1, "dent")]
    assert reviewer_client.post("/api/v1/labeling/next", headers=CSRF).status_code == 204

    # The reviewer confirms the first prediction, rejects the second and adds a missed crack.
    labels = [
        {"class_id": 0, "xyxyn": preds[0]["xyxyn"]},
        {"class_id": 2, "xyxyn": [0.5, 0.5, 0.7, 0.8]},
    ]
    r = submit(reviewer_client, task["id"], labels)
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 1)
    assert result["model_version"] == "1"
    assert result["seconds_open"] >= 0

    stats = viewer_client.get("/api/v1/labeling/stats").json()
    assert stats["tasks"]["uncertain"]["done"] == 1
    assert stats["totals"] == {"open": 0, "leased": 0, "done": 1, "skipped": 0, "expired": 0}
    assert stats["reviewed_frames"] == 1
    assert stats["labels_per_class"] == [
        {"class_id": 0, "class_name": "scratch", "labels": 1},
        {"class_id": 2, "class_name": "crack", "labels": 1},
    ]
    assert stats["since_production"]["version"] == "1"
    assert stats["since_production"]["reviewed_frames"] == 1
    assert stats["since_production"]["labels"] == 2
    [version] = stats["versions"]
    assert version["precision"] == pytest.approx(0.5)
    assert version["miss_rate"] is None  # not an audit frame
    with app_state(app).engine.connect() as conn:
        stored = conn.execute(text("SELECT labels, source, user_id FROM label_submissions")).one()
    assert stored.source == "review"
    assert stored.user_id is not None


def test_expired_lease_is_open_again_and_the_old_holder_gets_409(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    send_frame(device_client)
    first = lease(reviewer_client)["task"]
    with app_state(app).engine.begin() as conn:
        conn.execute(
            text("UPDATE label_tasks SET lease_expires_at = :t"),
            {"t": (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")}
            if app_state(app).engine.dialect.name == "sqlite"
            else {"t": datetime.now(UTC) - timedelta(seconds=1)},
        )
    stats = reviewer_client.get("/api/v1/labeling/stats").json()
    assert stats["totals"] == {"open": 1, "leased": 0, "done": 0, "skipped": 0, "expired": 0}
    with signed_in_client(app, "other-reviewer", "reviewer") as other:
        second = lease(other)["task"]
        assert second["id"] == first["id"]
        r = submit(reviewer_client, first["id"], [])
        assert r.status_code == 409
        assert "someone else" in r.json()["detail"]
        assert submit(other, second["id"], []).status_code == 200
    assert count_rows(app, "label_submissions") == 1


def test_the_holder_may_submit_after_expiry_when_nobody_took_the_task(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    send_frame(device_client)
    task = lease(reviewer_client)["task"]
    with app_state(app).engine.begin() as conn:
        conn.execute(text("UPDATE label_tasks SET lease_expires_at = leased_at"))
    assert submit(reviewer_client, task["id"], []).status_code == 200


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([{"class_id": 9, "xyxyn": [0.1, 0.1, 0.2, 0.2]}], "unknown class"),
        ([{"class_id": 0, "xyxyn": [0.1, 0.1, 1.2, 0.2]}], "less than or equal to 1"),
        ([{"class_id": 0, "xyxyn": [-0.1, 0.1, 0.2, 0.2]}], "greater than or equal to 0"),
        ([{"class_id": 0, "xyxyn": [0.3, 0.1, 0.2, 0.2]}], "x1 < x2"),
        ([{"class_id": 0, "xyxyn": [0.1, 0.1, 0.1, 0.2]}], "x1 < x2"),
        ([{"class_id": 0, "xyxyn": [0.1, 0.1, 0.2]}], "xyxyn"),
        ([{"class_id": 0, "xyxyn": [0.1, 0.1, 0.2, 0.2], "extra": 1}], "extra"),
    ],
    ids=["unknown-class", "outside", "negative", "x2<x1", "empty", "three-values", "extra-key"],
)
def test_bad_labels_are_422_with_nothing_stored(
    app: FastAPI,
    device_client: TestClient,
    reviewer_client: TestClient,
    labels: list[dict[str, Any]],
    message: str,
) -> None:
    send_frame(device_client)
    task = lease(reviewer_client)["task"]
    r = submit(reviewer_client, task["id"], labels)
    assert r.status_code == 422
    assert message in r.json()["detail"]
    assert count_rows(app, "label_submissions") == 0
    # The task is still leased to the reviewer, who can fix the labels and submit.
    assert submit(reviewer_client, task["id"], []).status_code == 200


def test_release_skip_and_their_errors(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    send_frame(device_client)
    task = lease(reviewer_client)["task"]
    base = f"/api/v1/labeling/tasks/{task['id']}"
    with signed_in_client(app, "other-reviewer", "reviewer") as other:
        assert other.post(f"{base}/release", headers=CSRF).status_code == 409
        assert reviewer_client.post(f"{base}/release", headers=CSRF).status_code == 204
        assert reviewer_client.post(f"{base}/release", headers=CSRF).status_code == 409
        again = lease(other)["task"]
        assert again["id"] == task["id"]
        r = other.post(f"{base}/skip", json={"reason": "blurred beyond use"}, headers=CSRF)
        assert r.status_code == 204
    assert reviewer_client.post("/api/v1/labeling/next", headers=CSRF).status_code == 204
    r = reviewer_client.post(f"{base}/skip", json={}, headers=CSRF)
    assert r.status_code == 422
    r = reviewer_client.post("/api/v1/labeling/tasks/999999/release", headers=CSRF)
    assert r.status_code == 404
    with app_state(app).engine.connect() as conn:
        status, note = conn.execute(text("SELECT status, note FROM label_tasks")).one()
    assert (status, note) == ("skipped", "skipped: blurred beyond use")


def test_manual_tasks_come_first_and_once(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    send_frame(device_client, confidence=0.5, seed=1)  # the most uncertain frame possible
    plain = unsampled_frame_with_image(app, device_client, seed=2)
    r = reviewer_client.post(
        "/api/v1/labeling/tasks", json={"frame_id": plain, "note": "missed dent"}, headers=CSRF
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["reason"], created["status"], created["note"]) == (
        "manual",
        "open",
        "missed dent",
    )
    r = reviewer_client.post("/api/v1/labeling/tasks", json={"frame_id": plain}, headers=CSRF)
    assert r.status_code == 200
    assert r.json()["id"] == created["id"]
    assert lease(reviewer_client)["task"]["id"] == created["id"]

    no_image = send_frame(device_client, reason=None, image=False, seed=3)
    r = reviewer_client.post("/api/v1/labeling/tasks", json={"frame_id": no_image}, headers=CSRF)
    assert r.status_code == 422
    r = reviewer_client.post(
        "/api/v1/labeling/tasks", json={"frame_id": str(uuid.uuid4())}, headers=CSRF
    )
    assert r.status_code == 404


def test_admin_reopens_a_done_task(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, admin_client: TestClient
) -> None:
    send_frame(device_client)
    task = lease(reviewer_client)["task"]
    reopen = f"/api/v1/labeling/tasks/{task['id']}/reopen"
    assert admin_client.post(reopen, headers=CSRF).status_code == 409  # still leased
    assert submit(reviewer_client, task["id"], []).status_code == 200
    r = admin_client.post(reopen, headers=CSRF)
    assert r.status_code == 200
    assert r.json()["status"] == "open"
    again = lease(reviewer_client)["task"]
    assert again["id"] == task["id"]
    assert (
        submit(reviewer_client, task["id"], [{"class_id": 1, "xyxyn": [0, 0, 1, 1]}]).status_code
        == 200
    )
    assert count_rows(app, "label_submissions") == 2  # every submission is kept


def test_classes_start_from_the_production_model_and_admins_add(
    app: FastAPI,
    device_client: TestClient,
    viewer_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
) -> None:
    r = viewer_client.get("/api/v1/classes")
    assert r.status_code == 200
    assert r.json() == [{"id": i, "name": n} for i, n in enumerate(CLASSES)]
    r = admin_client.post("/api/v1/classes", json={"name": "chip"}, headers=CSRF)
    assert r.status_code == 201
    assert r.json() == {"id": 4, "name": "chip"}
    r = admin_client.post("/api/v1/classes", json={"name": "chip"}, headers=CSRF)
    assert r.status_code == 409
    r = admin_client.post("/api/v1/classes", json={"name": ""}, headers=CSRF)
    assert r.status_code == 422
    # Usable at once.
    send_frame(device_client)
    task = lease(reviewer_client)
    assert task["classes"][-1] == {"id": 4, "name": "chip"}
    r = submit(
        reviewer_client, task["task"]["id"], [{"class_id": 4, "xyxyn": [0.1, 0.1, 0.3, 0.3]}]
    )
    assert r.status_code == 200


def test_audit_share_takes_audit_tasks_first(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    send_frame(device_client, reason="audit", detections=0, seed=1)
    send_frame(device_client, confidence=0.5, seed=2)
    settings = app_state(app).settings
    settings.labeling_audit_share = 0.0
    assert lease(reviewer_client)["task"]["reason"] == "uncertain"
    settings.labeling_audit_share = 1.0
    send_frame(device_client, confidence=0.5, seed=3)
    assert lease(reviewer_client)["task"]["reason"] == "audit"
    assert lease(reviewer_client)["task"]["reason"] == "uncertain"  # no audit left: the queue


def test_miss_rate_from_audit_frames_with_a_wilson_interval(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, viewer_client: TestClient
) -> None:
    settings = app_state(app).settings
    settings.labeling_audit_share = 0.0
    for seed in range(4):
        send_frame(device_client, reason="audit", confidence=0.9, detections=1, seed=seed)
    send_frame(device_client, reason="uncertain", confidence=0.5, detections=1, seed=9)
    for _ in range(5):
        task = lease(reviewer_client)["task"]
        box = task["predictions"][0]["xyxyn"] if task["predictions"] else None
        # Each frame: the predicted scratch is right, and there is one missed dent.
        labels = [{"class_id": 1, "xyxyn": [0.6, 0.6, 0.9, 0.9]}]
        if box is not None:
            labels.append({"class_id": 0, "xyxyn": box})
        assert submit(reviewer_client, task["id"], labels).status_code == 200
    [version] = viewer_client.get("/api/v1/labeling/stats").json()["versions"]
    assert version["reviewed_frames"] == 5
    assert (version["tp"], version["fp"], version["fn"]) == (5, 0, 5)
    assert version["precision"] == 1.0
    # Audit only: 4 frames, 8 true objects, 4 missed.
    assert (version["audit_frames"], version["audit_objects"], version["audit_misses"]) == (4, 8, 4)
    assert version["miss_rate"] == 0.5
    low, high = version["miss_rate_ci95"]
    assert (low, high) == (pytest.approx(0.2152, abs=1e-4), pytest.approx(0.7848, abs=1e-4))


def test_hybrid_strategy_penalises_near_duplicates(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient
) -> None:
    app_state(app).settings.labeling_strategy = "hybrid"
    app_state(app).settings.labeling_duplicate_bits = -1  # queued, to be penalised
    app_state(app).settings.labeling_age_hours = 0  # the priorities exactly
    send_frame(device_client, confidence=0.5, seed=5)
    send_frame(device_client, confidence=0.5, seed=5)  # the same picture again
    with app_state(app).engine.connect() as conn:
        first, second = conn.execute(text("SELECT priority FROM label_tasks ORDER BY id")).scalars()
    assert first == pytest.approx(1.0)
    assert second == pytest.approx(0.5)  # 1 - 0.5 * 1 (identical hash) + 0.25 * 0 (same class)


@pytest.mark.parametrize("task_id", ["0", "-1", str(2**64), "abc"])
def test_impossible_task_ids_are_422(reviewer_client: TestClient, task_id: str) -> None:
    r = reviewer_client.post(f"/api/v1/labeling/tasks/{task_id}/release", headers=CSRF)
    assert r.status_code == 422
    assert r.json()["detail"]


def test_without_a_production_model_the_class_list_starts_empty(
    app: FastAPI, viewer_client: TestClient, admin_client: TestClient
) -> None:
    class _Empty:
        def production(self) -> None:
            return None

    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _s: _Empty()
    )
    assert viewer_client.get("/api/v1/classes").json() == []
    r = admin_client.post("/api/v1/classes", json={"name": "chip"}, headers=CSRF)
    assert r.json() == {"id": 0, "name": "chip"}
    assert viewer_client.get("/api/v1/classes").json() == [{"id": 0, "name": "chip"}]
    assert viewer_client.get("/api/v1/labeling/stats").json()["since_production"] is None


def test_text_with_nul_characters_is_422(
    app: FastAPI, device_client: TestClient, reviewer_client: TestClient, admin_client: TestClient
) -> None:
    frame_id = unsampled_frame_with_image(app, device_client)
    r = admin_client.post("/api/v1/classes", json={"name": "a\x00b"}, headers=CSRF)
    assert r.status_code == 422
    r = reviewer_client.post(
        "/api/v1/labeling/tasks", json={"frame_id": frame_id, "note": "\x00"}, headers=CSRF
    )
    assert r.status_code == 422
    task = reviewer_client.post(
        "/api/v1/labeling/tasks", json={"frame_id": frame_id}, headers=CSRF
    ).json()
    assert lease(reviewer_client)["task"]["id"] == task["id"]
    r = reviewer_client.post(
        f"/api/v1/labeling/tasks/{task['id']}/skip", json={"reason": "x\x00"}, headers=CSRF
    )
    assert r.status_code == 422
