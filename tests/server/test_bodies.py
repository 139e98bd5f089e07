"""Body limits: one middleware bounds every route's body before parsing or authentication."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import CSRF_HEADERS, LiveServer, app_state
from visionloop.config import Settings
from visionloop.server.bodies import DEFAULT_BODY_LIMIT, BodyLimits

MIB = 1024 * 1024
LOGIN = "/api/v1/auth/login"


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_1_mib_login_is_413(client: TestClient) -> None:
    r = client.post(
        LOGIN, content=b"{" + b" " * MIB + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert "limit of 65536 bytes" in r.json()["detail"]


def test_a_chunked_1_mib_login_is_413(client: TestClient) -> None:
    # A generator body goes out chunked, without Content-Length.
    r = client.post(LOGIN, content=_chunks(MIB), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["detail"]


def test_the_limit_applies_before_authentication(client: TestClient) -> None:
    # No credentials at all: still a 413, not a 401, since nothing reads the body first.
    r = client.post("/api/v1/devices", content=b" " * (DEFAULT_BODY_LIMIT + 1))
    assert r.status_code == 413, r.text


def test_a_body_at_the_limit_is_parsed(client: TestClient) -> None:
    body = b'{"username": "nobody", "password": "x"}'
    padded = body[:-1] + b" " * (DEFAULT_BODY_LIMIT - len(body)) + b"}"
    assert len(padded) == DEFAULT_BODY_LIMIT
    r = client.post(LOGIN, content=padded, headers={"Content-Type": "application/json"})
    assert r.status_code == 401, r.text  # parsed, and the credentials are wrong


def _state_changing_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
    )


def _limits(**overrides: int) -> BodyLimits:
    values = {"max_batch_bytes": 8 * MIB, "max_image_bytes": 10 * MIB, **overrides}
    return BodyLimits(Settings(database_url="sqlite://", **values))


def test_every_route_has_a_body_limit(app: FastAPI, admin_client: TestClient) -> None:
    """Present and future routes alike: a body over the route's allowance is a 413."""
    limits = BodyLimits(app_state(app).settings)
    routes = _state_changing_routes(app)
    assert ("POST", LOGIN) in routes
    for method, template in routes:
        path = template.replace("{device_id}", "1").replace(
            "{frame_id}", "3f1c2a9e-8d4b-4f6a-9c2e-1b7d5e0a4c11"
        )
        limit = limits.limit_for(method, path)
        r = admin_client.request(method, path, content=b" " * (limit + 1))
        assert r.status_code == 413, f"{method} {template}: {r.status_code} {r.text[:200]}"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/v1/ingest", 8 * MIB),
        ("PUT", "/api/v1/frames/3f1c2a9e-8d4b-4f6a-9c2e-1b7d5e0a4c11/image", 10 * MIB),
        ("PUT", "/api/v1/frames/x/image/", 10 * MIB),
        ("GET", "/api/v1/ingest", DEFAULT_BODY_LIMIT),
        ("POST", "/api/v1/ingest/more", DEFAULT_BODY_LIMIT),
        ("PUT", "/api/v1/frames/a/b/image", DEFAULT_BODY_LIMIT),
        ("POST", "/api/v1/devices/heartbeat", DEFAULT_BODY_LIMIT),
    ],
)
def test_allowances_match_route_templates(method: str, path: str, expected: int) -> None:
    assert _limits().limit_for(method, path) == expected


def test_allowances_follow_the_settings() -> None:
    limits = _limits(max_batch_bytes=1000)
    assert limits.limit_for("POST", "/api/v1/ingest") == 1000


def test_a_real_server_refuses_oversize_bodies_and_keeps_serving(live_server: LiveServer) -> None:
    """Through uvicorn: the 413 arrives though the body was never read, and the server (and the
    client's connection pool) goes on working."""
    with httpx.Client(base_url=live_server.url, headers=CSRF_HEADERS, timeout=10) as c:
        declared = c.post(LOGIN, content=b" " * MIB, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text
        chunked = c.post(LOGIN, content=_chunks(MIB), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413, chunked.text
        assert c.get("/healthz").status_code == 200
        small = c.post(LOGIN, json={"username": "nobody", "password": "wrong-password"})
        assert small.status_code == 401
