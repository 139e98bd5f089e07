"""Errors as HTTP answers: a database that goes away is a 503 with ``Retry-After`` on every route
and one log line per request, on SQLite and on a real PostgreSQL outage; a 405 names every method
served at its path."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import (
    CSRF_HEADERS,
    TEST_PASSWORD,
    add_device,
    app_state,
    frame_batch,
    signed_in_client,
)
from support.outage import DATABASES, Outage, own_database
from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.auth import SESSION_COOKIE, Role
from visionloop.server.http_errors import (
    DATABASE_UNAVAILABLE,
    SCHEMA_NOT_MIGRATED,
    UNAVAILABLE_RETRY_AFTER_S,
)


@pytest.fixture(params=DATABASES)
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    with own_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def outage_app(outage: Outage, tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=outage.url))
    outage.watch(app_state(app).engine)
    yield app
    app_state(app).engine.dispose()


def _client(app: FastAPI, *, role: Role | None = None, token: str | None = None) -> TestClient:
    """A client that gets a 500 as an answer (not as an exception), signed in as a new person
    with ``role`` or sending a device ``token``."""
    headers = dict(CSRF_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    client = TestClient(app, headers=headers, raise_server_exceptions=False)
    if role is not None:
        with signed_in_client(app, f"{role}-{uuid.uuid4().hex[:6]}", role) as signed_in:
            client.cookies.set(SESSION_COOKIE, signed_in.cookies[SESSION_COOKIE])
    return client


def _assert_503(resp_status: int, headers: dict[str, str], body: object, detail: str) -> None:
    assert resp_status == 503, body
    assert headers.get("retry-after") == str(UNAVAILABLE_RETRY_AFTER_S)
    assert body == {"detail": detail}


def _every_api_request(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every ``/api/v1`` operation in the OpenAPI schema, path parameters
    filled with valid values (a UUID where the schema says so, else 1)."""
    requests = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            filled = path
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    is_uuid = param["schema"].get("format") == "uuid"
                    value = str(uuid.uuid4()) if is_uuid else "1"
                    filled = filled.replace(f"{{{param['name']}}}", value)
            requests.append((method.upper(), filled))
    return requests


def _db_log_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("visionloop")]


def test_a_database_outage_is_503_with_retry_after_and_one_log_line(
    outage: Outage, outage_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    app = outage_app
    device = add_device(app, "cam1")
    admin = _client(app, role=Role.ADMIN)
    reviewer = _client(app, role=Role.REVIEWER)
    camera = _client(app, token=device.token)
    stranger = _client(app)
    assert admin.get("/api/v1/devices").status_code == 200

    outage.cut()
    caplog.clear()
    caplog.set_level(logging.INFO)
    answers = [
        admin.get("/api/v1/devices"),
        reviewer.post("/api/v1/labeling/next"),
        camera.post("/api/v1/ingest", json=frame_batch(2)),
        stranger.post("/api/v1/auth/login", json={"username": "x", "password": TEST_PASSWORD}),
    ]
    for r in answers:
        _assert_503(r.status_code, dict(r.headers), r.json(), DATABASE_UNAVAILABLE)
    # One line per request, no traceback, nothing logged as an error.
    lines = _db_log_lines(caplog)
    assert len(lines) == len(answers), [r.getMessage() for r in lines]
    for record in lines:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
        assert "database unavailable" in record.getMessage()

    ready = stranger.get("/readyz")
    _assert_503(ready.status_code, dict(ready.headers), ready.json(), "database unreachable")
    assert stranger.get("/healthz").status_code == 200  # the process itself is alive

    # Every route: a 503, or a 422 decided before the database (sign-in with no fields).
    statuses = {
        (method, path): admin.request(method, path, json={}).status_code
        for method, path in _every_api_request(app)
    }
    assert len(statuses) > 40
    assert {k: s for k, s in statuses.items() if s != 503} == {("POST", "/api/v1/auth/login"): 422}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    outage.restore()
    assert admin.get("/api/v1/devices").status_code == 200
    assert stranger.get("/readyz").json() == {"status": "ready"}


def test_a_database_recreated_empty_is_503_and_not_ready_until_migrated(
    outage: Outage, outage_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    app = outage_app
    admin = _client(app, role=Role.ADMIN)
    stranger = _client(app)
    assert stranger.get("/readyz").json() == {"status": "ready"}

    outage.recreate_empty()
    caplog.set_level(logging.INFO)
    ready = stranger.get("/readyz")
    assert ready.status_code == 503
    assert "schema missing" in ready.json()["detail"]
    r = admin.get("/api/v1/devices")
    _assert_503(r.status_code, dict(r.headers), r.json(), SCHEMA_NOT_MIGRATED)
    statuses = {
        (method, path): admin.request(method, path, json={}).status_code
        for method, path in _every_api_request(app)
    }
    assert not {k: s for k, s in statuses.items() if s >= 500 and s != 503}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    outage.migrate()
    assert stranger.get("/readyz").json() == {"status": "ready"}
    assert admin.get("/api/v1/devices").status_code == 401  # the person went with the tables


@pytest.fixture
def sqlite_client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A client of an app on SQLite (the answers below never reach the database)."""
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=sqlite_url))
    with TestClient(app, headers=CSRF_HEADERS) as client:
        yield client
    app_state(app).engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/users", "GET, POST"),  # a route each for GET and POST
        ("DELETE", "/api/v1/devices", "GET, POST"),
        ("PUT", "/api/v1/jobs", "GET, POST"),
        ("GET", "/api/v1/auth/login", "POST"),
        ("DELETE", "/api/v1/users/audit", "GET"),  # not a {user_id}: ids are digits
        ("POST", "/openapi.json", "GET, HEAD"),  # Starlette's own route also serves HEAD
    ],
    ids=lambda v: str(v),
)
def test_405_allow_names_every_method_served_at_the_path(
    sqlite_client: TestClient, method: str, path: str, allow: str
) -> None:
    r = sqlite_client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json() == {"detail": "Method Not Allowed"}


def _template(path: str, operations: dict[str, Any]) -> re.Pattern[str]:
    """A documented path as a pattern: an integer parameter matches digits, any other one
    segment."""
    types = {
        p["name"]: p["schema"].get("type")
        for op in operations.values()
        for p in op.get("parameters", [])
        if p["in"] == "path"
    }
    return re.compile(
        re.sub(
            r"{([^}]+)}",
            lambda m: "[0-9]+" if types.get(m.group(1)) == "integer" else "[^/]+",
            path,
        )
    )


def test_405_allow_matches_the_schema_on_every_path(sqlite_client: TestClient) -> None:
    """Every documented path, asked with a method it does not serve: ``Allow`` is every method
    of every documented path that matches it."""
    paths = sqlite_client.app.openapi()["paths"]  # type: ignore[attr-defined]  # a FastAPI app
    templates = [(_template(p, ops), set(ops)) for p, ops in paths.items()]
    for template in paths:
        path = re.sub(r"{[^}]+}", "1", template)
        expected = set().union(*(ms for t, ms in templates if t.fullmatch(path)))
        unserved = next(m for m in ("put", "patch", "delete", "post", "get") if m not in expected)
        r = sqlite_client.request(unserved.upper(), path)
        assert r.status_code == 405, (unserved, path, r.text)
        assert r.headers["allow"] == ", ".join(sorted(m.upper() for m in expected)), path
