"""Database, settings and app fixtures (SQLite and PostgreSQL), and helpers to build real records.

Fixtures (function scope unless said):

- ``db_url``: a migrated, empty database, parametrized ``sqlite`` / ``postgresql`` (test ids
  ``[sqlite]`` / ``[postgresql]``). SQLite: a copy of a migrated template file in ``tmp_path``.
  PostgreSQL: one fresh database per test session (created, migrated, dropped at the end;
  its commits do not wait for the disk), its tables emptied before each test. Outside CI a
  PostgreSQL that is down skips those tests with a message; with ``CI=true`` it fails them.
  Select one side with ``-k sqlite`` or ``-m "not postgres"``.
- ``sqlite_url``: the SQLite side only, for tests that need no second database.
- ``settings``: ``Settings`` with ``data_dir=tmp_path`` and ``database_url=db_url`` (the
  autouse ``clean_environ`` of tests/conftest.py has cleared ``VISIONLOOP_*`` and ``MLFLOW_*``).
- ``app``: ``create_app(settings)``; ``client``: a ``TestClient`` on it, with no credentials but
  the dashboard's CSRF header (``CSRF_HEADERS``), so that it can sign in.
- ``device``: a ``DeviceCredentials`` (id, name, token) of an enabled device named ``cam1``;
  ``device_client``: a TestClient sending that device's bearer token.
- ``admin_client``, ``reviewer_client``, ``viewer_client``: TestClients signed in as such a person
  (session cookie set directly; ``/api/v1/auth/login`` has its own tests), sending the CSRF
  header as the dashboard does (tests/server/test_csrf.py covers requests without it).
- ``live_server``: a ``LiveServer`` running ``app`` under uvicorn on 127.0.0.1 in a thread;
  ``.url``, ``.stop()`` and ``.start()`` (same port) to simulate an outage.

Helpers: ``CSRF_HEADERS``, ``add_device``, ``add_user``, ``signed_in_client``, ``frame_record``
(one valid frame record as a JSON-ready dict), ``frame_batch``, ``count_rows``, ``app_state``
(an app's ``ServerState``: engine, session factories, settings), ``free_port``.
``VISIONLOOP_TEST_PG_URL`` points the PostgreSQL side at another server (default
postgres@127.0.0.1:5432); it is read when this module loads, before each test's environment is
cleared.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from visionloop.config import Settings
from visionloop.server.app import create_app
from visionloop.server.auth import SESSION_COOKIE, Role, hash_password
from visionloop.server.db import create_db_engine
from visionloop.server.migrate import upgrade
from visionloop.server.state import server_state
from visionloop.server.store import devices as device_store
from visionloop.server.store import people

PG_ADMIN_URL = os.environ.get(
    "VISIONLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEST_PASSWORD = "correct-horse-battery"
# What the dashboard sends with every request; cookie requests that change state need it
# (or a same-origin Origin header).
CSRF_HEADERS = {"X-Visionloop-CSRF": "1"}


# --- databases -----------------------------------------------------------------------------------


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    try:
        with psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            dbname=url.database,
            connect_timeout=3,
        ):
            return None
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session (dropped afterwards)."""
    problem = _postgres_reachable()
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"visionloop_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A commit need not wait for the disk (~5 ms each): a crash loses only test data.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    try:
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    """Delete every row (but the migrations' version) and restart the sequences that were used.

    As ``TRUNCATE ... RESTART IDENTITY`` would, at a fraction of its cost on tables this small
    (a TRUNCATE makes new files for each table: 0.2-0.8 s a test, a DELETE ~0.05 s). Foreign
    keys are not checked meanwhile (``session_replication_role``, a superuser's right, which the
    test server's ``postgres`` has); every table is emptied, so none is left dangling. Without
    that right it falls back to TRUNCATE.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            tables = (
                conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
                .scalars()
                .all()
            )
            if not tables:
                return
            try:
                with conn.begin_nested():
                    conn.execute(text("SET LOCAL session_replication_role = replica"))
            except ProgrammingError:  # not a superuser
                names = ", ".join(f'"{t}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                return
            conn.execute(text("; ".join(f'DELETE FROM "{t}"' for t in tables)))
            used = conn.execute(
                text(
                    "SELECT sequencename, start_value FROM pg_sequences "
                    "WHERE schemaname = 'public' AND last_value IS NOT NULL"
                )
            ).all()
            for name, start in used:
                conn.execute(
                    text("SELECT setval(CAST(:seq AS regclass), :start, false)"),
                    {"seq": f'"{name}"', "start": start},
                )
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (a migration per test would be slow)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "visionloop.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _sqlite_copy(template: Path, tmp_path: Path) -> str:
    target = tmp_path / "visionloop.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database on SQLite and on PostgreSQL (see the module doc)."""
    if request.param == "sqlite":
        return _sqlite_copy(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty SQLite database only."""
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings over ``tmp_path`` and ``db_url`` (tests/conftest.py clears the environment)."""
    return Settings(data_dir=tmp_path, database_url=db_url)


# --- the app and its clients ---------------------------------------------------------------------


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    server_state(_AppConn(app)).engine.dispose()


class _AppConn:
    """Just enough of an HTTPConnection for ``server_state``."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app


def app_state(app: FastAPI) -> Any:
    """The ``ServerState`` of ``app`` (engine, session factories, blobs, metrics, settings)."""
    return server_state(_AppConn(app))  # type: ignore[arg-type]


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=CSRF_HEADERS) as c:
        yield c


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    id: int
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_device(app: FastAPI, name: str = "cam1", *, disabled: bool = False) -> DeviceCredentials:
    """Register a device directly in the app's database; returns its id and token."""
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        dev, token = device_store.create_device(session, name=name)
        if disabled:
            device_store.disable_device(session, device_id=dev.id)
        return DeviceCredentials(id=dev.id, name=dev.name, token=token)


@cache
def _test_password_hash() -> str:
    return hash_password(TEST_PASSWORD)  # argon2 is slow on purpose: hash once per session


def add_user(app: FastAPI, name: str, role: Role | str) -> int:
    """Add a person with password ``TEST_PASSWORD``; returns the user id."""
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        user = people.add_user(
            session, name=name, role=Role(role), password_hash=_test_password_hash()
        )
        return user.id


def signed_in_client(app: FastAPI, name: str, role: Role | str, *, csrf: bool = True) -> TestClient:
    """A new TestClient carrying a session cookie for a new person ``name`` with ``role`` (and,
    unless ``csrf=False``, the CSRF header). Use it as a context manager (or close it)."""
    user_id = add_user(app, name, role)
    state = app_state(app)
    with state.write_sessions() as session, session.begin():
        token = people.open_session(session, user_id=user_id, ttl=timedelta(hours=1))
    c = TestClient(app, headers=CSRF_HEADERS if csrf else None)
    c.cookies.set(SESSION_COOKIE, token)
    return c


@pytest.fixture
def device(app: FastAPI) -> DeviceCredentials:
    return add_device(app, "cam1")


@pytest.fixture
def device_client(app: FastAPI, device: DeviceCredentials) -> Iterator[TestClient]:
    with TestClient(app, headers=device.headers) as c:
        yield c


@pytest.fixture
def admin_client(app: FastAPI) -> Iterator[TestClient]:
    with signed_in_client(app, "alice-admin", Role.ADMIN) as c:
        yield c


@pytest.fixture
def reviewer_client(app: FastAPI) -> Iterator[TestClient]:
    with signed_in_client(app, "rita-reviewer", Role.REVIEWER) as c:
        yield c


@pytest.fixture
def viewer_client(app: FastAPI) -> Iterator[TestClient]:
    with signed_in_client(app, "victor-viewer", Role.VIEWER) as c:
        yield c


# --- a real server on a port ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """``app`` served by uvicorn in a background thread on 127.0.0.1 (stoppable, restartable on
    the same port)."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


# --- records -------------------------------------------------------------------------------------


def frame_record(
    *,
    frame_id: uuid.UUID | str | None = None,
    captured_at: datetime | None = None,
    detections: int = 2,
    class_names: tuple[str, ...] = ("scratch", "dent", "crack", "stain"),
    confidence: float = 0.8,
    sample_reason: str | None = None,
    model_version: str = "1",
    **overrides: Any,
) -> dict[str, Any]:
    """One valid frame record as a JSON-ready dict (see docs/design.md, "Frame record")."""
    ts = captured_at or datetime.now(UTC)
    record: dict[str, Any] = {
        "id": str(frame_id or uuid.uuid4()),
        "captured_at": ts.isoformat().replace("+00:00", "Z"),
        "model_version": model_version,
        "width": 640,
        "height": 480,
        "stats": {"brightness": 0.52, "contrast": 0.18, "sharpness": 143.2},
        "detections": [
            {
                "class_id": i % len(class_names),
                "class_name": class_names[i % len(class_names)],
                "confidence": confidence,
                "xyxyn": [0.1, 0.2, min(0.9, 0.15 + 0.05 * i), 0.4],
            }
            for i in range(detections)
        ],
        "sample_reason": sample_reason,
    }
    record.update(overrides)
    return record


def frame_batch(n: int, *, start: datetime | None = None, **kwargs: Any) -> dict[str, Any]:
    """An ingest body of ``n`` valid frames, captured one second apart from ``start``."""
    t0 = start or datetime.now(UTC) - timedelta(seconds=n)
    return {
        "frames": [frame_record(captured_at=t0 + timedelta(seconds=i), **kwargs) for i in range(n)]
    }


def count_rows(app: FastAPI, table: str) -> int:
    """How many rows ``table`` holds in the app's database."""
    from sqlalchemy import text

    with app_state(app).engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
