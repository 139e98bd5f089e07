"""Every route against every kind of caller: nobody, a device token, a viewer, a reviewer, an admin.

A new route joins ``ROLE_TABLE`` with its expected statuses; ``test_every_route_is_in_the_table``
fails until it does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import (
    CSRF_HEADERS,
    add_device,
    add_user,
    app_state,
    frame_record,
    signed_in_client,
)
from visionloop.errors import ConflictError, NotFoundError
from visionloop.server.model_catalog import ModelCatalog
from visionloop.server.store import jobs as job_store

ROLES = ("none", "device", "viewer", "reviewer", "admin")


@dataclass(frozen=True)
class Ctx:
    """Things that exist before each call: a frame with an image, a device to disable, a
    queued job."""

    frame_id: str
    spare_device_id: int
    job_id: int
    spare_user_id: int


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str  # the route template; {frame_id}, {device_id}, {job_id}, {user_id}: from Ctx
    expected: dict[str, int]
    request: Callable[[Ctx, str], dict[str, Any]] = lambda ctx, role: {}

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _statuses(none: int, device: int, viewer: int, reviewer: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (none, device, viewer, reviewer, admin), strict=True))


PUBLIC = _statuses(200, 200, 200, 200, 200)
PERSON_READ = _statuses(401, 403, 200, 200, 200)
ADMIN_ONLY = _statuses(401, 403, 403, 403, 200)
DEVICE_ONLY = _statuses(401, 200, 403, 403, 403)
REVIEWER_UP = _statuses(401, 403, 403, 200, 200)
CSRF = {"X-Visionloop-CSRF": "1"}


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


ROLE_TABLE: list[RouteCase] = [
    RouteCase("GET", "/healthz", PUBLIC),
    RouteCase("GET", "/readyz", PUBLIC),
    RouteCase("GET", "/metrics", PUBLIC),
    RouteCase(
        "POST",
        "/api/v1/auth/login",
        # A public route, and these credentials are wrong: 401. The device sends its token but
        # no CSRF header: an Authorization header no longer exempts a sign-in from the CSRF rule
        # (issue 20, finding 5), so it is refused before the password is checked: 403.
        _statuses(401, 403, 401, 401, 401),
        lambda ctx, role: {"json": {"username": "nobody", "password": "wrong-password"}},
    ),
    RouteCase("POST", "/api/v1/auth/logout", _statuses(204, 204, 204, 204, 204)),
    RouteCase("GET", "/api/v1/auth/me", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/auth/password",
        _statuses(401, 403, 422, 422, 422),  # signed-in people are let through: wrong password
        lambda ctx, role: {
            "json": {"current_password": "wrong-password", "new_password": "lilac-otter-4711"}
        },
    ),
    RouteCase("POST", "/api/v1/auth/sign-out-everywhere", _statuses(401, 403, 200, 200, 200)),
    # People's lifecycle: admins only; {user_id} is a spare reviewer.
    RouteCase("GET", "/api/v1/users", ADMIN_ONLY),
    RouteCase(
        "POST",
        "/api/v1/users",
        {**ADMIN_ONLY, "admin": 201},
        lambda ctx, role: {"json": {"name": f"new-person-{role}", "role": "viewer"}},
    ),
    RouteCase(
        "PATCH",
        "/api/v1/users/{user_id}",
        ADMIN_ONLY,
        lambda ctx, role: {"json": {"role": "viewer"}},
    ),
    RouteCase("POST", "/api/v1/users/{user_id}/disable", ADMIN_ONLY),
    RouteCase("POST", "/api/v1/users/{user_id}/enable", ADMIN_ONLY),
    RouteCase(
        "POST", "/api/v1/users/{user_id}/password", ADMIN_ONLY, lambda ctx, role: {"json": {}}
    ),
    RouteCase("POST", "/api/v1/users/{user_id}/sign-out", ADMIN_ONLY),
    RouteCase("DELETE", "/api/v1/users/{user_id}", {**ADMIN_ONLY, "admin": 204}),
    RouteCase("GET", "/api/v1/users/audit", ADMIN_ONLY),
    RouteCase("GET", "/api/v1/devices", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/devices",
        {**ADMIN_ONLY, "admin": 201},
        lambda ctx, role: {"json": {"name": f"new-cam-{role}"}},
    ),
    RouteCase(
        "POST",
        "/api/v1/devices/heartbeat",
        DEVICE_ONLY,
        lambda ctx, role: {"json": {"fps": 29.5, "outbox_backlog": 3}},
    ),
    RouteCase("POST", "/api/v1/devices/{device_id}/disable", ADMIN_ONLY),
    RouteCase("POST", "/api/v1/devices/{device_id}/enable", ADMIN_ONLY),
    RouteCase("POST", "/api/v1/devices/{device_id}/rotate", ADMIN_ONLY),
    RouteCase(
        "POST",
        "/api/v1/ingest",
        DEVICE_ONLY,
        lambda ctx, role: {"json": {"frames": [frame_record()]}},
    ),
    RouteCase("GET", "/api/v1/frames", PERSON_READ),
    RouteCase("GET", "/api/v1/frames/{frame_id}", PERSON_READ),
    RouteCase(
        "PUT",
        "/api/v1/frames/{frame_id}/image",
        DEVICE_ONLY,
        lambda ctx, role: {"content": _jpeg(), "headers": {"Content-Type": "image/jpeg"}},
    ),
    RouteCase("GET", "/api/v1/frames/{frame_id}/image", PERSON_READ),
    RouteCase("GET", "/api/v1/stats/summary", PERSON_READ),
    RouteCase("GET", "/api/v1/stats/rate", PERSON_READ),
    # Devices and people both read models; the registry here is empty, so a caller let through
    # gets 404 (tests/server/test_models.py covers the answers themselves).
    RouteCase("GET", "/api/v1/models/production", _statuses(401, 404, 404, 404, 404)),
    RouteCase("GET", "/api/v1/models/{version}/onnx", _statuses(401, 404, 404, 404, 404)),
    RouteCase("GET", "/api/v1/models/{version}/int8", _statuses(401, 404, 404, 404, 404)),
    # Labeling: viewers read, reviewers label, admins add classes and reopen. {task_id} names no
    # task, so callers let through get 404 (tests/server/test_labeling.py covers the answers).
    RouteCase("GET", "/api/v1/classes", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/classes",
        {**ADMIN_ONLY, "admin": 201},
        lambda ctx, role: {"json": {"name": f"class-{role}"}, "headers": CSRF},
    ),
    RouteCase("GET", "/api/v1/labeling/stats", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/labeling/tasks",
        # The sampled frame's image already made its task: sending it again returns that task.
        {**REVIEWER_UP, "reviewer": 200},
        lambda ctx, role: {"json": {"frame_id": ctx.frame_id}, "headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/labeling/next",
        {**REVIEWER_UP, "reviewer": 200, "admin": 204},  # the reviewer leases the one task
        lambda ctx, role: {"headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/labeling/tasks/{task_id}/release",
        {**REVIEWER_UP, "reviewer": 404, "admin": 404},
        lambda ctx, role: {"headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/labeling/tasks/{task_id}/skip",
        {**REVIEWER_UP, "reviewer": 404, "admin": 404},
        lambda ctx, role: {"json": {"reason": "blurred"}, "headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/labeling/tasks/{task_id}/submit",
        {**REVIEWER_UP, "reviewer": 404, "admin": 404},
        lambda ctx, role: {"json": {"labels": []}, "headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/labeling/tasks/{task_id}/reopen",
        {**ADMIN_ONLY, "admin": 404},
        lambda ctx, role: {"headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/jobs",
        {**ADMIN_ONLY, "admin": 201},
        lambda ctx, role: {
            "json": {"kind": "evaluate", "params": {"model_version": "1", "dataset": "/data/x"}}
        },
    ),
    RouteCase("GET", "/api/v1/jobs", PERSON_READ),
    RouteCase("GET", "/api/v1/jobs/{job_id}", PERSON_READ),
    RouteCase("GET", "/api/v1/jobs/{job_id}/log", PERSON_READ),
    RouteCase("POST", "/api/v1/jobs/{job_id}/cancel", ADMIN_ONLY),
    # Drift: viewers read, admins pin references and queue checks. {check_id} names no check.
    RouteCase(
        "POST",
        "/api/v1/drift/reference",
        ADMIN_ONLY,
        lambda ctx, role: {
            "json": {
                "device_id": ctx.spare_device_id,
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-11-02T00:00:00Z",
            },
            "headers": CSRF,
        },
    ),
    RouteCase(
        "DELETE",
        "/api/v1/drift/reference/{device_id}",
        {**ADMIN_ONLY, "admin": 404},  # nothing pinned on the spare device
        lambda ctx, role: {"headers": CSRF},
    ),
    RouteCase(
        "POST",
        "/api/v1/drift/checks",
        {**ADMIN_ONLY, "admin": 202},
        lambda ctx, role: {"json": {"device_id": ctx.spare_device_id}, "headers": CSRF},
    ),
    RouteCase("GET", "/api/v1/drift/checks", PERSON_READ),
    RouteCase("GET", "/api/v1/drift/checks/{check_id}", _statuses(401, 403, 404, 404, 404)),
    RouteCase("GET", "/api/v1/drift/checks/{check_id}/report", _statuses(401, 403, 404, 404, 404)),
    RouteCase("GET", "/api/v1/drift/status", PERSON_READ),
    RouteCase(
        "GET",
        "/api/v1/drift/features",
        PERSON_READ,
        lambda ctx, role: {"params": {"device_id": ctx.spare_device_id, "window": "1h"}},
    ),
    RouteCase("GET", "/api/v1/models", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/models/{version}/promote",
        {**ADMIN_ONLY, "admin": 404},  # the registry here is empty
        lambda ctx, role: {"json": {"reason": "r"}},
    ),
    RouteCase(
        "POST",
        "/api/v1/models/rollback",
        {**ADMIN_ONLY, "admin": 409},  # nothing to roll back
        lambda ctx, role: {"json": {"reason": "r"}},
    ),
    RouteCase("GET", "/api/v1/retraining/status", PERSON_READ),
    RouteCase(
        "POST",
        "/api/v1/retraining/trigger",
        {**ADMIN_ONLY, "admin": 202},
        lambda ctx, role: {"json": {"reason": "r"}},
    ),
]


class _EmptyRegistry:
    """A model registry holding no version (no MLflow store is created)."""

    def production(self) -> None:
        return None

    def get(self, version: str) -> Any:
        raise NotFoundError(f"no model version {version}")

    def onnx_path(self, version: str) -> Any:
        raise NotFoundError(f"no model version {version}")

    def versions(self) -> list[Any]:
        return []

    def promote(self, version: str, **_: Any) -> None:
        raise NotFoundError(f"no model version {version}")

    def rollback(self, **_: Any) -> Any:
        raise ConflictError("nothing is production: there is nothing to roll back")


@pytest.fixture
def callers(app: FastAPI) -> Iterator[tuple[dict[str, TestClient], Ctx]]:
    app.state.model_catalog = ModelCatalog(
        app_state(app).settings, registry_factory=lambda _settings: _EmptyRegistry()
    )
    device = add_device(app, "cam1")
    spare = add_device(app, "spare")
    spare_user_id = add_user(app, "spare-person", "reviewer")
    clients = {
        "none": TestClient(app, headers=CSRF_HEADERS),  # not a credential; login needs it
        "device": TestClient(app, headers=device.headers),
        "viewer": signed_in_client(app, "v", "viewer"),
        "reviewer": signed_in_client(app, "r", "reviewer"),
        "admin": signed_in_client(app, "a", "admin"),
    }
    frame = frame_record(sample_reason="audit", width=64, height=48)  # the size of _jpeg()
    dev = clients["device"]
    assert dev.post("/api/v1/ingest", json={"frames": [frame]}).status_code == 200
    r = dev.put(f"/api/v1/frames/{frame['id']}/image", content=_jpeg())
    assert r.status_code == 200, r.text
    with app_state(app).write_sessions() as session, session.begin():
        job = job_store.enqueue(
            session, kind="evaluate", params={}, created_by="test", max_attempts=1
        )
    yield (
        clients,
        Ctx(
            frame_id=frame["id"],
            spare_device_id=spare.id,
            job_id=job.id,
            spare_user_id=spare_user_id,
        ),
    )
    for c in clients.values():
        c.close()


@pytest.mark.parametrize("case", ROLE_TABLE, ids=[c.id for c in ROLE_TABLE])
def test_route_statuses_by_role(
    case: RouteCase, callers: tuple[dict[str, TestClient], Ctx]
) -> None:
    clients, ctx = callers
    path = case.path.format(
        frame_id=ctx.frame_id,
        device_id=ctx.spare_device_id,
        job_id=ctx.job_id,
        user_id=ctx.spare_user_id,
        version="1",
        task_id=999_999,
        check_id=999_999,
    )
    got = {}
    for role in ROLES:
        r = clients[role].request(case.method, path, **case.request(ctx, role))
        got[role] = r.status_code
        if r.status_code >= 400:
            assert r.json()["detail"], f"{role}: an error without a detail"
    assert got == case.expected


def test_every_route_is_in_the_table(app: FastAPI) -> None:
    documented = {
        f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops
    }
    in_table = {c.id for c in ROLE_TABLE}
    assert documented - in_table == set(), "add these routes to ROLE_TABLE"
    assert in_table - documented == set(), "these ROLE_TABLE rows name no route"


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    r = client.get(f"/api/v1/nothing-here/{uuid.uuid4()}")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}
