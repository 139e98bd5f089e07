"""People signing in and out: the session cookie, its flags, wrong credentials, expiry, the
throttle on failed sign-ins, and the password check outside any write transaction."""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from support.db import CSRF_HEADERS, TEST_PASSWORD, add_user, app_state, count_rows
from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.auth import SESSION_COOKIE, Role, hash_password, verify_password
from visionloop.server.models import LoginFailure
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


LOGIN = "/api/v1/auth/login"


def _login(client: TestClient, name: str, password: str) -> Any:
    return client.post(LOGIN, json={"username": name, "password": password})


def _age_failures(app: FastAPI, seconds: float) -> None:
    """Make every recorded failure ``seconds`` older, in the database every replica reads."""
    with app_state(app).write_sessions() as s, s.begin():
        for failure in s.scalars(select(LoginFailure)):
            failure.failed_at -= timedelta(seconds=seconds)


def test_a_name_under_attack_waits_ever_longer(app: FastAPI, client: TestClient) -> None:
    settings = app_state(app).settings
    settings.login_name_free_failures = 3  # argon2 is slow on purpose
    settings.login_name_max_delay_s = 4
    add_user(app, "rita", Role.VIEWER)
    for _ in range(3):
        assert _login(client, "rita", "wrong-password").status_code == 401
    waits = []
    for _ in range(4):
        r = _login(client, "rita", "wrong-password")
        assert r.status_code == 429, r.text
        assert "too many failed sign-ins" in r.json()["detail"]
        waits.append(int(r.headers["retry-after"]))
        # Throttled means refused unchecked: the right password waits too.
        assert _login(client, "rita", TEST_PASSWORD).status_code == 429
        _age_failures(app, waits[-1])
        assert _login(client, "rita", "wrong-password").status_code == 401
    assert waits == [1, 2, 4, 4]  # doubling, capped at login_name_max_delay_s
    # Refused attempts were not counted: 3 free failures and 4 after each wait.
    assert count_rows(app, "login_failures") == 2 * 7
    _age_failures(app, 4)
    assert _login(client, "rita", TEST_PASSWORD).status_code == 200
    # Signing in clears the name's failures; the address keeps its own.
    assert count_rows(app, "login_failures") == 7


ATTACKER = ("203.0.113.7", 40000)


def test_a_bystander_at_the_same_address_signs_in_during_an_attack(app: FastAPI) -> None:
    """Issue 20, finding 7: ten bad passwords for one name locked its address out."""
    add_user(app, "rita", Role.VIEWER)
    add_user(app, "sam", Role.VIEWER)
    with TestClient(app, headers=CSRF_HEADERS, client=ATTACKER) as attacker:
        statuses = Counter(_login(attacker, "rita", f"guess-{i}").status_code for i in range(40))
        assert statuses[401] == 5 and statuses[429] == 35  # 5 checked, the rest refused unchecked
        r = _login(attacker, "sam", TEST_PASSWORD)  # a colleague behind the same address
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "sam"


def test_an_address_is_throttled_across_names_at_a_higher_threshold(app: FastAPI) -> None:
    app_state(app).settings.login_address_failures_per_hour = 4
    add_user(app, "rita", Role.VIEWER)
    with TestClient(app, headers=CSRF_HEADERS, client=ATTACKER) as sprayer:
        for i in range(4):
            assert _login(sprayer, f"name-{i}", "wrong-password").status_code == 401
        r = _login(sprayer, "rita", TEST_PASSWORD)
        assert r.status_code == 429
        assert 3590 <= int(r.headers["retry-after"]) <= 3600
    with TestClient(app, headers=CSRF_HEADERS, client=("198.51.100.2", 40000)) as elsewhere:
        assert _login(elsewhere, "rita", TEST_PASSWORD).status_code == 200
    _age_failures(app, 3601)
    with TestClient(app, headers=CSRF_HEADERS, client=ATTACKER) as sprayer:
        assert _login(sprayer, "rita", TEST_PASSWORD).status_code == 200


def _failure_addresses(app: FastAPI) -> set[str]:
    with app_state(app).read_sessions() as s:
        keys = s.scalars(select(LoginFailure.key)).all()
    return {k.removeprefix("addr:") for k in keys if k.startswith("addr:")}


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "counted_as"),
    [
        ("", "10.0.0.1", "198.51.100.9", "10.0.0.1"),
        ("10.0.0.1", "10.0.0.1", "198.51.100.9", "198.51.100.9"),
        ("10.0.0.0/8", "10.0.0.1", "198.51.100.9, 10.0.0.5", "198.51.100.9"),
        # A client's own X-Forwarded-For entries come first; the proxy appends the real address.
        ("10.0.0.1", "10.0.0.1", "1.2.3.4, 198.51.100.9", "198.51.100.9"),
        ("10.0.0.1", "10.0.0.2", "198.51.100.9", "10.0.0.2"),
    ],
    ids=["no-proxy-trusted", "trusted-proxy", "trusted-network", "spoofed-entry", "untrusted"],
)
def test_x_forwarded_for_is_read_only_from_trusted_proxies(
    settings: Settings, trusted: str, peer: str, forwarded: str, counted_as: str
) -> None:
    app = create_app(settings.model_copy(update={"trusted_proxies": trusted}))
    try:
        headers = {**CSRF_HEADERS, "X-Forwarded-For": forwarded}
        with TestClient(app, headers=headers, client=(peer, 40000)) as c:
            assert _login(c, "nobody", "wrong-password").status_code == 401
        assert _failure_addresses(app) == {counted_as}
    finally:
        app_state(app).engine.dispose()


def test_password_is_checked_outside_any_write_transaction(
    app: FastAPI, client: TestClient, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While argon2 runs, another writer (an ingest) could take the database at once."""
    add_user(app, "rita", Role.VIEWER)
    state = app_state(app)
    seen: list[bool] = []
    real_verify = people.verify_password

    def verify_while_writing(password_hash: str, password: str) -> bool:
        # The app's own queue of SQLite writers is free, and so is the database's write lock.
        seen.append(not state._write_lock.locked())
        if db_url.startswith("sqlite"):
            with closing(sqlite3.connect(make_url(db_url).database or "", timeout=0)) as raw:
                raw.execute("BEGIN IMMEDIATE")  # "database is locked" at once if one were open
                raw.rollback()
        return real_verify(password_hash, password)

    monkeypatch.setattr(people, "verify_password", verify_while_writing)
    assert _login(client, "rita", "wrong-password").status_code == 401
    assert _login(client, "rita", TEST_PASSWORD).status_code == 200
    assert seen == [True, True]
