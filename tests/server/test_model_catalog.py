"""The model catalog's start: ``visionloop serve`` opens the registry in the background, and no
request waits for it meanwhile (issue 20, finding 10: the first reviewers waited 8.6-13.3 s)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import app_state
from support.labeling import ProductionRegistry
from visionloop.config import Settings
from visionloop.server.model_catalog import ModelCatalog, catalog_of

CLASSES = ("scratch", "dent")
GATE_LIMIT_S = 15.0
"""A request that waits for the gate (the bug) is released after this, so a regression fails
the test instead of hanging it."""


def opens_when(gate: threading.Event) -> Callable[[Settings], ProductionRegistry]:
    """A registry factory that takes until ``gate`` opens, as MLflow's import and a new store's
    creation take seconds."""

    def factory(_settings: Settings) -> ProductionRegistry:
        gate.wait(GATE_LIMIT_S)
        return ProductionRegistry(CLASSES)

    return factory


@pytest.fixture
def gate(app: FastAPI) -> Iterator[threading.Event]:
    """The app's catalog, warming up in the background until the gate opens."""
    gate = threading.Event()
    catalog = ModelCatalog(app_state(app).settings, registry_factory=opens_when(gate))  # type: ignore[arg-type]  # a stand-in with the one method read
    app.state.model_catalog = catalog
    catalog.start_warming()
    yield gate
    gate.set()


def timed(call: Callable[[], object]) -> tuple[object, float]:
    t0 = time.monotonic()
    result = call()
    return result, time.monotonic() - t0


def test_no_request_waits_while_the_registry_starts(
    app: FastAPI,
    gate: threading.Event,
    reviewer_client: TestClient,
    viewer_client: TestClient,
    device_client: TestClient,
) -> None:
    catalog = catalog_of(app)
    assert catalog.warming
    for request in (
        lambda: reviewer_client.post("/api/v1/labeling/next"),
        lambda: reviewer_client.get("/api/v1/classes"),
        lambda: viewer_client.get("/api/v1/labeling/stats"),
        lambda: device_client.get("/api/v1/models/production"),
    ):
        _, seconds = timed(request)
        assert seconds < 2.0
    # No class to label with yet: "retry shortly", never a task with an empty class list.
    for r in (
        reviewer_client.post("/api/v1/labeling/next"),
        reviewer_client.get("/api/v1/classes"),
    ):
        assert r.status_code == 503
        assert r.headers["retry-after"] and "still loading" in r.json()["detail"]
    assert viewer_client.get("/api/v1/labeling/stats").json()["since_production"] is None
    polled = device_client.get("/api/v1/models/production")
    assert polled.status_code == 503  # the edge retries it
    assert polled.headers["retry-after"] and "starting" in polled.json()["detail"]

    gate.set()
    deadline = time.monotonic() + 10
    while catalog.warming and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not catalog.warming
    assert reviewer_client.post("/api/v1/labeling/next").status_code == 204  # an empty queue
    assert [c["name"] for c in reviewer_client.get("/api/v1/classes").json()] == list(CLASSES)
    assert device_client.get("/api/v1/models/production").json()["version"] == "1"
    assert viewer_client.get("/api/v1/labeling/stats").json()["since_production"]["version"] == "1"


def test_a_new_class_waits_for_the_model_classes(
    gate: threading.Event, admin_client: TestClient
) -> None:
    """An admin's class must come after the production model's (their ids are the model's class
    ids), so adding one is the request that does wait."""
    threading.Timer(0.3, gate.set).start()
    r = admin_client.post("/api/v1/classes", json={"name": "crack"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == len(CLASSES)
    names = [c["name"] for c in admin_client.get("/api/v1/classes").json()]
    assert names == [*CLASSES, "crack"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_serve_opens_the_registry_as_it_starts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``app_factory`` (what ``visionloop serve`` runs) starts the warm-up before any request.
    The registry named here is down, so the warm-up ends within seconds and says so."""
    from visionloop.cli.server import app_factory

    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("VISIONLOOP_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("VISIONLOOP_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    caplog.set_level(logging.INFO, logger="visionloop.server.model_catalog")
    app = app_factory()
    try:
        catalog = catalog_of(app)
        assert catalog.warming
        deadline = time.monotonic() + 60
        while catalog.warming and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not catalog.warming
        said = [r.getMessage() for r in caplog.records]
        assert any("model registry not opened at start" in m for m in said), said
    finally:
        app_state(app).engine.dispose()


def test_a_warm_up_that_fails_leaves_the_registry_to_the_first_use(tmp_path: Path) -> None:
    attempts: list[int] = []

    def factory(_settings: Settings) -> ProductionRegistry:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("registry down")
        return ProductionRegistry(CLASSES)

    catalog = ModelCatalog(Settings(data_dir=tmp_path), registry_factory=factory)  # type: ignore[arg-type]  # a stand-in with the one method read
    catalog.start_warming().join(10)
    assert not catalog.warming
    version = catalog.production(wait=False)
    assert version is not None and version.version == "1"
