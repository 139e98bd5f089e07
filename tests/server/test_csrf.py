"""CSRF: cookie requests that change state need a same-origin Origin/Referer or the CSRF header;
device tokens are exempt; sign-in is held to the same rule."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import TEST_PASSWORD, DeviceCredentials, add_user, count_rows, signed_in_client
from visionloop.server.auth import Role

DEVICES = "/api/v1/devices"
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def bare_admin(app: FastAPI) -> Iterator[TestClient]:
    """An admin's cookie client that sends no CSRF header (as a forged request would)."""
    with signed_in_client(app, "alice-admin", Role.ADMIN, csrf=False) as c:
        yield c


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "http://testserver.evil.example"}, 403),
        ({"Origin": "https://testserver"}, 403),  # other scheme, other origin
        ({"Origin": "http://testserver:8080"}, 403),
        ({"Origin": "null"}, 403),
        ({"Referer": "https://evil.example/page"}, 403),
        ({"X-Visionloop-CSRF": "0"}, 403),
        ({"X-Visionloop-CSRF": "1"}, 201),
        ({"Origin": "http://testserver"}, 201),
        ({"Origin": "http://TestServer:80"}, 201),
        ({"Referer": "http://testserver/devices?x=1"}, 201),
        ({"Origin": "https://evil.example", "X-Visionloop-CSRF": "1"}, 201),
    ],
    ids=[
        "no-header",
        "cross-origin",
        "look-alike-host",
        "other-scheme",
        "other-port",
        "null-origin",
        "cross-site-referer",
        "header-not-1",
        "csrf-header",
        "same-origin",
        "same-origin-default-port",
        "same-origin-referer",
        "header-wins",
    ],
)
def test_cookie_requests_that_change_state_need_proof(
    app: FastAPI, bare_admin: TestClient, headers: dict[str, str], status: int
) -> None:
    r = bare_admin.post(DEVICES, json={"name": "cam9"}, headers=headers)
    assert r.status_code == status, r.text
    if status == 403:
        assert "X-Visionloop-CSRF" in r.json()["detail"]
        assert count_rows(app, "devices") == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_every_state_changing_method_is_checked(bare_admin: TestClient, method: str) -> None:
    # Even on a path with no route: the guard runs before routing.
    assert bare_admin.request(method, f"{DEVICES}/1").status_code == 403


def test_reads_need_no_proof(bare_admin: TestClient) -> None:
    assert bare_admin.get(DEVICES).status_code == 200
    assert bare_admin.get("/api/v1/auth/me", headers={"Origin": "https://evil.example"}).is_success


def test_logout_is_checked_too(bare_admin: TestClient) -> None:
    assert bare_admin.post("/api/v1/auth/logout").status_code == 403
    assert bare_admin.get("/api/v1/auth/me").status_code == 200  # still signed in


def test_device_tokens_are_exempt(app: FastAPI, device: DeviceCredentials) -> None:
    # A bearer request from anywhere, when no session cookie comes with it.
    with TestClient(app, headers=device.headers) as c:
        r = c.post("/api/v1/devices/heartbeat", json={}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWxpY2U6eA==", "Bearer vld_not-a-token", "Bearer", "Negotiate x"],
    ids=["basic", "unknown-bearer", "empty-bearer", "other-scheme"],
)
def test_an_authorization_header_does_not_exempt_a_cookie_request(
    app: FastAPI, bare_admin: TestClient, authorization: str
) -> None:
    """Issue 20, finding 5: the cookie still authenticates, so the request still needs proof."""
    headers = {"Authorization": authorization, "Origin": "https://evil.example"}
    r = bare_admin.post(DEVICES, json={"name": "cam9"}, headers=headers)
    assert r.status_code == 403, r.text
    assert count_rows(app, "devices") == 0
    same_site = {"Authorization": authorization, "X-Visionloop-CSRF": "1"}
    assert bare_admin.post(DEVICES, json={"name": "cam9"}, headers=same_site).status_code == 201


def test_a_device_request_with_a_stray_cookie_needs_proof_too(
    device: DeviceCredentials, bare_admin: TestClient
) -> None:
    bare_admin.headers.update(device.headers)
    assert bare_admin.post("/api/v1/devices/heartbeat", json={}).status_code == 403
    r = bare_admin.post("/api/v1/devices/heartbeat", json={}, headers={"X-Visionloop-CSRF": "1"})
    assert r.status_code == 200


def test_sign_in_needs_proof_too(app: FastAPI) -> None:
    add_user(app, "rita", Role.VIEWER)
    body = {"username": "rita", "password": TEST_PASSWORD}
    with TestClient(app) as c:
        r = c.post(LOGIN, json=body)
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert (
            c.post(LOGIN, json=body, headers={"Origin": "https://evil.example"}).status_code == 403
        )
        assert c.post(LOGIN, json=body, headers={"Origin": "http://testserver"}).status_code == 200
        # An Authorization header exempts no sign-in (finding 5 of issue 20).
        forged = {"Authorization": "Basic cml0YTp4", "Origin": "https://evil.example"}
        assert c.post(LOGIN, json=body, headers=forged).status_code == 403
    with TestClient(app, headers={"X-Visionloop-CSRF": "1"}) as c:
        assert c.post(LOGIN, json=body).status_code == 200


def test_a_request_without_a_cookie_is_left_to_authentication(client: TestClient) -> None:
    # No cookie and no token: not a CSRF matter, a plain 401.
    with TestClient(client.app) as bare:
        assert bare.post(DEVICES, json={"name": "cam9"}).status_code == 401
