"""The retraining policy and its routes without training (SQLite and PostgreSQL): the status's
reasons, the scheduler's check, at most one train job queued or running (the database's partial
unique index), and a second trigger's 409."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import app_state
from support.labeling import CSRF, review_everything, send_frames
from visionloop.config import Settings
from visionloop.errors import ConflictError
from visionloop.jobs.train import policy_check
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.retraining import queue_train, retraining_status
from visionloop.server.store import jobs as job_store
from visionloop.server.store.jobs import JobStatus
from visionloop.training.registry import ModelVersion
from visionloop.vision.synthetic import CLASS_NAMES

REGISTERED = datetime(2026, 11, 1, tzinfo=UTC)


def _production() -> ModelVersion:
    return ModelVersion(
        version="1",
        aliases=["production"],
        sha256="0" * 64,
        size_bytes=1,
        metrics={},
        tags={"classes": ",".join(CLASS_NAMES)},
        created_at=REGISTERED,
    )


class _Registry:
    def production(self) -> ModelVersion:
        return _production()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"retrain_min_labels": 3, "retrain_cooldown": 3600.0})


@pytest.fixture
def labeled(app: FastAPI, settings: Settings) -> FastAPI:
    app.state.model_catalog = ModelCatalog(
        settings,
        registry_factory=lambda _s: _Registry(),  # type: ignore[arg-type,return-value]
    )
    return app


def test_status_trigger_and_one_train_job(
    labeled: FastAPI,
    settings: Settings,
    device_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
    viewer_client: TestClient,
) -> None:
    state = app_state(labeled)
    status = viewer_client.get("/api/v1/retraining/status").json()
    assert status["eligible"] is False
    assert status["reason"] == "0 of 3 reviewed frames since the last training"

    review_everything(reviewer_client, send_frames(device_client, {"train": 3}))
    status = viewer_client.get("/api/v1/retraining/status").json()
    assert status["eligible"] is True, status
    assert status["labels_since_last_training"] == 3

    # The scheduler's check queues one job; a second check and a trigger do not queue another.
    check = policy_check(settings, lambda _s: _Registry())  # type: ignore[arg-type,return-value]
    with state.write_sessions() as session, session.begin():
        check(session)
    with state.write_sessions() as session, session.begin():
        check(session)
        job = job_store.active_job(session, kind="train")
        assert job is not None
        job_id = job.id
        assert job.params["trigger"] == "policy"
    r = admin_client.post("/api/v1/retraining/trigger", json={"reason": "x"}, headers=CSRF)
    assert r.status_code == 409
    assert r.json()["job_id"] == job_id
    assert str(job_id) in r.json()["detail"]
    status = viewer_client.get("/api/v1/retraining/status").json()
    assert status["reason"] == f"train job {job_id} is already queued"
    assert status["last_job"]["id"] == job_id

    # The index, not a check in code: a direct insert is refused too.
    with state.write_sessions() as session, session.begin():
        with pytest.raises(ConflictError):
            job_store.enqueue(session, kind="train", params={}, created_by="test", max_attempts=1)
        other = job_store.enqueue(
            session, kind="evaluate", params={}, created_by="test", max_attempts=1
        )
        assert other.id > job_id

    # Once it finished (its data cut now), a person may trigger again; the policy cools down.
    with state.write_sessions() as session, session.begin():
        claimed = job_store.claim(session, worker_id="w", kinds=["train"], lease_seconds=60)
        assert claimed is not None and claimed.id == job_id
        cut = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        job_store.finish(
            session,
            claimed=claimed,
            status=JobStatus.SUCCEEDED,
            message="done",
            result={"data_cut_at": cut},
        )
    with state.read_sessions() as session:
        found = retraining_status(session, settings=settings, production=_production())
    assert found.labels_since_last_training == 0
    assert found.eligible is False
    r = admin_client.post("/api/v1/retraining/trigger", json={"reason": "again"}, headers=CSRF)
    assert r.status_code == 202, r.text
    assert r.json()["job_id"] > job_id
    # No label since that training: queued anyway, with a warning that gives the numbers.
    assert r.json()["warning"].startswith(
        "only 0 reviewed frames since the last training, fewer than the policy's 3 "
        "(VISIONLOOP_RETRAIN_MIN_LABELS)"
    )


def test_trigger_with_enough_labels_has_no_warning(
    labeled: FastAPI,
    device_client: TestClient,
    reviewer_client: TestClient,
    admin_client: TestClient,
) -> None:
    review_everything(reviewer_client, send_frames(device_client, {"train": 3}))
    r = admin_client.post("/api/v1/retraining/trigger", json={"reason": "x"}, headers=CSRF)
    assert r.status_code == 202, r.text
    assert r.json()["warning"] is None


def test_cooldown_and_no_production(settings: Settings, app: FastAPI) -> None:
    state = app_state(app)
    quick = settings.model_copy(update={"retrain_min_labels": 1})
    with state.write_sessions() as session, session.begin():
        assert retraining_status(session, settings=quick, production=None).reason == (
            "no production model to fine-tune"
        )
        job = queue_train(session, settings=quick, reason="r", created_by="t", trigger="person")
        session.flush()
        job.status = JobStatus.FAILED.value
    with state.read_sessions() as session:
        found = retraining_status(session, settings=quick, production=_production())
    assert found.cooldown_until is not None
    assert found.reason.startswith("0 of 1") or found.reason.startswith("cooling down")


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 422), ({"reason": ""}, 422), ({"reason": "x", "extra": 1}, 422)],
    ids=["no-reason", "empty-reason", "unknown-field"],
)
def test_trigger_needs_a_reason(
    admin_client: TestClient, body: dict[str, object], status: int
) -> None:
    r = admin_client.post("/api/v1/retraining/trigger", json=body, headers=CSRF)
    assert r.status_code == status
    assert r.json()["detail"]
