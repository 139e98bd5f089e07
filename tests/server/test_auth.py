"""People signing in and out: the session cookie, its flags, wrong credentials, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from support.db import TEST_PASSWORD, add_user, app_state
from visionloop.server.auth import SESSION_COOKIE, Role, hash_password, verify_password
from visionloop.server.store import people


def test_login_me_logout(app: FastAPI, client: TestClient) -> None:
    add_user(app, "rita", Role.REVIEWER)
    r = client.post("/api/v1/auth/login", json={"username": "rita", "password": TEST_PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "rita" and r.json()["role"] == "reviewer"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Max-Age=43200" in cookie
    assert "Secure" not in cookie
    assert client.get("/api/v1/auth/me").json()["name"] == "rita"

    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_logged_out_cookie_no_longer_works(app: FastAPI, client: TestClient) -> None:
    add_user(app, "rita", Role.VIEWER)
    client.post("/api/v1/auth/login", json={"username": "rita", "password": TEST_PASSWORD})
    token = client.cookies[SESSION_COOKIE]
    client.post("/api/v1/auth/logout")
    with TestClient(app) as replay:
        replay.cookies.set(SESSION_COOKIE, token)
        assert replay.get("/api/v1/auth/me").status_code == 401


@pytest.mark.parametrize(
    ("username", "password"),
    [("rita", "wrong-password"), ("nobody", TEST_PASSWORD), ("RITA", TEST_PASSWORD)],
    ids=["wrong-password", "unknown-user", "other-case"],
)
def test_wrong_credentials_are_401(
    app: FastAPI, client: TestClient, username: str, password: str
) -> None:
    add_user(app, "rita", Role.VIEWER)
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 401
    assert r.json() == {"detail": "wrong user name or password"}
    assert SESSION_COOKIE not in r.cookies


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "rita"}, {"username": "", "password": "x"}, {"user": "a", "password": "b"}],
    ids=["empty", "no-password", "empty-name", "unknown-field"],
)
def test_malformed_login_is_422(client: TestClient, body: dict[str, str]) -> None:
    r = client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


def test_expired_session_is_refused(app: FastAPI) -> None:
    user_id = add_user(app, "rita", Role.VIEWER)
    with app_state(app).write_sessions() as s, s.begin():
        token = people.open_session(s, user_id=user_id, ttl=timedelta(seconds=-1))
    with TestClient(app) as c:
        c.cookies.set(SESSION_COOKIE, token)
        assert c.get("/api/v1/auth/me").status_code == 401


def test_cookie_is_secure_when_configured(app: FastAPI, client: TestClient) -> None:
    app_state(app).settings.cookie_secure = True
    add_user(app, "rita", Role.VIEWER)
    r = client.post("/api/v1/auth/login", json={"username": "rita", "password": TEST_PASSWORD})
    assert "Secure" in r.headers["set-cookie"]


def test_passwords_are_stored_as_argon2_hashes() -> None:
    h = hash_password("s3cret-enough")
    assert h.startswith("$argon2id$") and "s3cret-enough" not in h
    assert verify_password(h, "s3cret-enough")
    assert not verify_password(h, "s3cret-enougH")
    assert not verify_password("not-a-hash", "x")
