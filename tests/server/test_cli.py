"""The server's CLI commands, run in-process on SQLite and PostgreSQL, and the demo end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from support.db import CSRF_HEADERS, app_state, count_rows, frame_batch, free_port
from visionloop.cli import app as cli
from visionloop.cli.server import _demo_setup
from visionloop.config import Settings

runner = CliRunner()


def _env(settings: Settings) -> dict[str, str]:
    return {
        "VISIONLOOP_DATA_DIR": str(settings.data_dir),
        "VISIONLOOP_DATABASE_URL": settings.database_url,
    }


def test_db_upgrade(settings: Settings) -> None:
    r = runner.invoke(cli, ["db", "upgrade"], env=_env(settings))
    assert r.exit_code == 0, r.output
    assert "at revision" in r.output


def test_devices_add_prints_a_working_token_on_the_last_line(
    settings: Settings, app: FastAPI
) -> None:
    r = runner.invoke(cli, ["devices", "add", "cam7"], env=_env(settings))
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("vld_") and " " not in token
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(3)).json()["accepted"] == 3
    assert count_rows(app, "frames") == 3

    again = runner.invoke(cli, ["devices", "add", "cam7"], env=_env(settings))
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_devices_list_and_disable(settings: Settings, app: FastAPI) -> None:
    env = _env(settings)
    token = runner.invoke(cli, ["devices", "add", "cam7"], env=env).output.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["devices", "list"], env=env)
    assert listed.exit_code == 0 and "cam7" in listed.output and "enabled" in listed.output
    r = runner.invoke(cli, ["devices", "disable", "cam7"], env=env)
    assert r.exit_code == 0, r.output
    assert "disabled" in runner.invoke(cli, ["devices", "list"], env=env).output
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(1)).status_code == 403
    missing = runner.invoke(cli, ["devices", "disable", "nope"], env=env)
    assert missing.exit_code == 1 and "no device" in missing.output


def test_devices_rotate_and_enable(settings: Settings, app: FastAPI) -> None:
    env = _env(settings)
    old = runner.invoke(cli, ["devices", "add", "cam7"], env=env).output.strip().splitlines()[-1]
    r = runner.invoke(cli, ["devices", "rotate", "cam7"], env=env)
    assert r.exit_code == 0, r.output
    new = r.output.strip().splitlines()[-1]
    assert new.startswith("vld_") and " " not in new and new != old
    with TestClient(app, headers={"Authorization": f"Bearer {old}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(1)).status_code == 401
    assert runner.invoke(cli, ["devices", "disable", "cam7"], env=env).exit_code == 0
    with TestClient(app, headers={"Authorization": f"Bearer {new}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(1)).status_code == 403
    r = runner.invoke(cli, ["devices", "enable", "cam7"], env=env)
    assert r.exit_code == 0 and "enabled" in r.output, r.output
    # The CLI is another process: a running server notices within its token cache's 2 s.
    app_state(app).device_cache.clear()
    with TestClient(app, headers={"Authorization": f"Bearer {new}"}) as c:
        assert c.post("/api/v1/ingest", json=frame_batch(1)).status_code == 200
    for command in ("rotate", "enable"):
        missing = runner.invoke(cli, ["devices", command, "nope"], env=env)
        assert missing.exit_code == 1 and "no device" in missing.output


def test_users_add_then_login(settings: Settings, app: FastAPI) -> None:
    env = _env(settings)
    r = runner.invoke(
        cli,
        ["users", "add", "ada", "--role", "reviewer", "--password-stdin"],
        input="a-long-password\n",
        env=env,
    )
    assert r.exit_code == 0, r.output
    with TestClient(app, headers=CSRF_HEADERS) as c:
        login = c.post(
            "/api/v1/auth/login", json={"username": "ada", "password": "a-long-password"}
        )
        assert login.status_code == 200 and login.json()["role"] == "reviewer"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "boss", "--password-stdin"], "a-long-password\n", "--role"),
        (["--password-stdin"], "short\n", "at least 8"),
        (["--password-stdin"], "password\n", "most common"),
        # Issue 20, finding 8: sign-in takes at most 1,024 characters, so the CLI must too.
        (["--password-stdin"], "correct horse battery staple " * 52 + "\n", "at most 1024"),
    ],
    ids=["bad-role", "short-password", "common-password", "overlong-password"],
)
def test_users_add_refuses_bad_input(
    settings: Settings, args: list[str], stdin: str, message: str
) -> None:
    r = runner.invoke(cli, ["users", "add", "ada", *args], input=stdin, env=_env(settings))
    assert r.exit_code != 0
    assert message in r.output


def test_users_lifecycle_commands(settings: Settings, app: FastAPI) -> None:
    """Issue 20, finding 4: `visionloop users` had only `add`."""
    env = _env(settings)

    def run(*args: str, stdin: str | None = None) -> str:
        r = runner.invoke(cli, ["users", *args], input=stdin, env=env)
        assert r.exit_code == 0, r.output
        return r.output

    run("add", "root", "--role", "admin", "--password-stdin", stdin="a-long-password\n")
    run("add", "ada", "--role", "reviewer", "--password-stdin", stdin="a-long-password\n")
    with TestClient(app, headers=CSRF_HEADERS) as ada:
        login = {"username": "ada", "password": "a-long-password"}
        assert ada.post("/api/v1/auth/login", json=login).status_code == 200
        assert "now has role viewer" in run("role", "ada", "viewer")
        assert ada.get("/api/v1/auth/me").json()["role"] == "viewer"
        assert "1 session(s) ended" in run("sign-out", "ada")
        assert ada.get("/api/v1/auth/me").status_code == 401

        run("disable", "ada")
        assert ada.post("/api/v1/auth/login", json=login).status_code == 401
        run("enable", "ada")
        temporary = run("reset-password", "ada").strip().splitlines()[-1]
        assert ada.post("/api/v1/auth/login", json=login).status_code == 401
        r = ada.post("/api/v1/auth/login", json={"username": "ada", "password": temporary})
        assert r.status_code == 200 and r.json()["must_change_password"] is True

    listed = run("list")
    assert "ada" in listed and "must change pw" in listed
    run("delete", "ada", "--yes")
    assert "ada" not in run("list") and "deleted" in run("list", "--deleted")
    r = runner.invoke(cli, ["users", "disable", "root"], env=env)
    assert r.exit_code == 1 and "last enabled admin" in r.output
    audit = run("audit")
    for action in ("create", "role", "sign_out", "disable", "enable", "reset_password", "delete"):
        assert action in audit
    assert "cli:" in audit


def test_users_add_prompts_twice_without_stdin(settings: Settings) -> None:
    r = runner.invoke(
        cli,
        ["users", "add", "ada"],
        input="a-long-password\na-long-password\n",
        env=_env(settings),
    )
    assert r.exit_code == 0, r.output
    assert "role viewer" in r.output


def test_demo_setup_creates_credentials_once_and_keeps_them(
    settings: Settings, app: FastAPI
) -> None:
    first = _demo_setup(settings, oracle=True)
    assert first.admin_password and first.device_token and first.oracle_password
    assert first.admin_created and first.device_created
    second = _demo_setup(settings, oracle=True)
    assert not (second.admin_created or second.device_created)
    assert (second.admin_password, second.device_token, second.oracle_password) == (
        first.admin_password,
        first.device_token,
        first.oracle_password,
    )
    kept = settings.data_dir / "demo"
    assert {p.name for p in kept.iterdir()} == {"admin-password", "device-token", "oracle-password"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in kept.iterdir())  # this user's only
    with TestClient(app, headers=CSRF_HEADERS) as c:
        r = c.post(
            "/api/v1/auth/login", json={"username": "admin", "password": first.admin_password}
        )
        assert r.json()["role"] == "admin"
        r = c.post(
            "/api/v1/auth/login", json={"username": "oracle", "password": first.oracle_password}
        )
        assert r.json()["role"] == "reviewer"

    # A lost token file: the device gets a new token (the old one is revoked).
    (kept / "device-token").unlink()
    third = _demo_setup(settings)
    assert third.device_token != first.device_token and not third.device_created
    assert (kept / "device-token").read_text().strip() == third.device_token


def test_help_is_fast_and_imports_no_server_libraries() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); from visionloop.cli import app; "
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'mlflow') if m in sys.modules]; "
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, _seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", out.stdout


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_serves_healthz_and_keeps_its_credentials(tmp_path: Path, sqlite_url: str) -> None:
    """Also: demo starts a job worker beside the server, and SIGINT (Ctrl-C) or SIGTERM stops
    both."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_")}
    env["VISIONLOOP_DATA_DIR"] = str(tmp_path / "demo")
    # The camera has its own test (tests/web/test_demo.py): here the server and the worker.
    cmd = [sys.executable, "-m", "visionloop", "demo", "--no-camera", "--port", str(port)]

    def run_once(stop: signal.Signals) -> str:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        workers: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "demo did not serve /healthz in 60 s"
                time.sleep(0.2)
            workers = _children(proc.pid)
        finally:
            proc.send_signal(stop)
            output, _ = proc.communicate(timeout=30)
        assert len(workers) == 1, output
        assert f"job worker started (pid {workers[0]})" in output
        assert not _alive(workers[0]), f"the worker outlived demo after {stop.name}"
        return output

    first = run_once(signal.SIGINT)
    assert f"dashboard: http://127.0.0.1:{port}/" in first
    password = re.search(r"demo admin created: user 'admin', password (\S+)", first)
    token = re.search(r"demo device 'demo-cam' created; token: (vld_\S+)", first)
    assert password and token, first
    second = run_once(signal.SIGTERM)  # resumes: the same credentials, printed again
    assert f"demo admin kept: user 'admin', password {password[1]}" in second
    assert f"demo device 'demo-cam' kept; token: {token[1]}" in second
