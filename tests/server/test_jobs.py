"""The job routes: queue (admin), list with filters and pages, one job, its log, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from support.db import app_state, signed_in_client
from support.jobs import test_kinds
from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.store import jobs as job_store

CSRF = {"X-Visionloop-CSRF": "1"}


@pytest.fixture
def jobs_app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings, job_kinds=test_kinds())
    yield app
    app_state(app).engine.dispose()


@pytest.fixture
def admin(jobs_app: FastAPI) -> Iterator[TestClient]:
    with signed_in_client(jobs_app, "alice-admin", "admin") as c:
        c.headers.update(CSRF)
        yield c


@pytest.fixture
def viewer(jobs_app: FastAPI) -> Iterator[TestClient]:
    with signed_in_client(jobs_app, "victor-viewer", "viewer") as c:
        c.headers.update(CSRF)
        yield c


def _evaluate(tmp_path: Path, **params: Any) -> dict[str, Any]:
    return {
        "kind": "evaluate",
        "params": {"model_version": "production", "dataset": str(tmp_path / "ds"), **params},
    }


def test_queue_then_read_a_job(admin: TestClient, viewer: TestClient, tmp_path: Path) -> None:
    r = admin.post("/api/v1/jobs", json=_evaluate(tmp_path))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["kind"] == "evaluate"
    assert job["params"] == {
        "model_version": "production",
        "dataset": str(tmp_path / "ds"),
        "split": "test",
        "backend": "auto",
        "precision": "fp32",
    }  # defaults filled in: what the worker will run
    assert job["created_by"] == "alice-admin" and job["max_attempts"] == 3
    assert job["attempts"] == 0 and job["progress"] == 0.0 and job["log_tail"] == ""
    got = viewer.get(f"/api/v1/jobs/{job['id']}")
    assert got.status_code == 200 and got.json() == job
    log = viewer.get(f"/api/v1/jobs/{job['id']}/log")
    assert log.status_code == 200 and log.text == ""
    assert log.headers["content-type"].startswith("text/plain")


def test_list_filters_and_pages_newest_first(admin: TestClient, viewer: TestClient) -> None:
    ids = []
    for i in range(5):
        body = {"kind": "sleep", "params": {"seconds": i}, "max_attempts": 1 + i % 2}
        ids.append(admin.post("/api/v1/jobs", json=body).json()["id"])
    assert admin.post(f"/api/v1/jobs/{ids[1]}/cancel").json()["status"] == "cancelled"

    listed = viewer.get("/api/v1/jobs").json()
    assert [j["id"] for j in listed["items"]] == ids[::-1] and listed["next_cursor"] is None
    pages, cursor = [], None
    while True:
        page = viewer.get(
            "/api/v1/jobs", params={"limit": 2, "cursor": cursor} if cursor else {"limit": 2}
        ).json()
        pages.append([j["id"] for j in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    cancelled = viewer.get("/api/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[1]]
    assert viewer.get("/api/v1/jobs", params={"kind": "evaluate"}).json()["items"] == []
    assert len(viewer.get("/api/v1/jobs", params={"kind": "sleep"}).json()["items"]) == 5


def test_cancel_a_queued_job_then_a_finished_one_is_409(admin: TestClient) -> None:
    job_id = admin.post("/api/v1/jobs", json={"kind": "sleep"}).json()["id"]
    r = admin.post(f"/api/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled" and r.json()["message"] == (
        "cancelled before it started"
    )
    again = admin.post(f"/api/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["detail"] == f"job {job_id} already cancelled"


def test_cancel_a_running_job_flags_it(jobs_app: FastAPI, admin: TestClient) -> None:
    job_id = admin.post("/api/v1/jobs", json={"kind": "sleep"}).json()["id"]
    state = app_state(jobs_app)
    with state.write_sessions() as session, session.begin():
        assert isinstance(session, Session)
        job_store.claim(session, worker_id="w1", kinds=["sleep"], lease_seconds=60)
    r = admin.post(f"/api/v1/jobs/{job_id}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "running" and r.json()["cancel_requested"] is True


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            {"kind": "nope"},
            422,
            "unknown job kind 'nope' (known: evaluate, train, quantize, drift_check, "
            "alert_webhook, "
            "sleep)",
        ),
        ({"kind": "evaluate", "params": {}}, 422, "params.model_version: Field required"),
        (
            {"kind": "evaluate", "params": {"model_version": "1", "dataset": "data/x"}},
            422,
            "params.dataset: Value error, must be an absolute path",
        ),
        (
            {"kind": "evaluate", "params": {"model_version": "v1", "dataset": "/d"}},
            422,
            "params.model_version: String should match pattern",
        ),
        ({"kind": "sleep", "params": {"seconds": "long"}}, 422, "params.seconds:"),
        ({"kind": "sleep", "params": {"naps": 2}}, 422, "params.naps: Extra inputs"),
        ({"kind": "sleep", "max_attempts": 0}, 422, "max_attempts"),
        ({"kind": "sleep", "priority": 1}, 422, "priority"),
        ({"kind": "sleep", "params": [1]}, 422, "params"),
        ({}, 422, "kind"),
    ],
    ids=[
        "unknown-kind",
        "missing-param",
        "relative-path",
        "bad-version",
        "wrong-type",
        "unknown-param",
        "zero-attempts",
        "unknown-field",
        "params-not-object",
        "no-kind",
    ],
)
def test_bad_job_requests_are_422_naming_the_field(
    admin: TestClient, body: dict[str, Any], status: int, detail: str
) -> None:
    r = admin.post("/api/v1/jobs", json=body)
    assert r.status_code == status, r.text
    assert detail in r.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/api/v1/jobs/999", None, 404),
        ("GET", "/api/v1/jobs/999/log", None, 404),
        ("POST", "/api/v1/jobs/999/cancel", None, 404),
        ("GET", "/api/v1/jobs/abc", None, 422),
        ("GET", "/api/v1/jobs", {"status": "sleeping"}, 422),
        ("GET", "/api/v1/jobs", {"cursor": "nope"}, 422),
        ("GET", "/api/v1/jobs", {"cursor": "-4"}, 422),
        ("GET", "/api/v1/jobs", {"limit": 0}, 422),
        ("GET", "/api/v1/jobs", {"limit": 501}, 422),
    ],
)
def test_bad_ids_and_filters_are_4xx(
    admin: TestClient, method: str, path: str, params: dict[str, Any] | None, status: int
) -> None:
    r = admin.request(method, path, params=params)
    assert r.status_code == status, r.text
    assert r.json()["detail"]


def test_malformed_json_is_400(admin: TestClient) -> None:
    r = admin.post(
        "/api/v1/jobs", content=b'{"kind": ', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["detail"].startswith("malformed JSON")
