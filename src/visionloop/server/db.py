"""Engine creation: one place that knows SQLite's pragmas and each database's URL quirks."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from visionloop.errors import UnavailableError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000
PG_CONNECT_TIMEOUT_S = 10
"""How long a new PostgreSQL connection may take: a database host that drops packets is a 503
within this, not a request hung for the kernel's two-minute TCP timeout."""


def is_sqlite(url: str) -> bool:
    """True for a ``sqlite://`` URL (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(url: str, *, pool_size: int = 8) -> Engine:
    """An engine for ``url``. SQLite: WAL, ``foreign_keys=ON``, a busy timeout, the parent folder
    created; PostgreSQL: a pre-pinged connection pool whose connections time out after
    ``PG_CONNECT_TIMEOUT_S``.
    """
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # A connect_timeout in the URL wins: connect_args would override it.
    connect_args = (
        {}
        if "connect_timeout" in make_url(url).query
        else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    )
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def connect_error(url: str, exc: OperationalError) -> UnavailableError:
    """A one-line, actionable error for a database that cannot be opened (a PostgreSQL database
    nobody created, a server that is down, a SQLite file that cannot be opened)."""
    parsed = make_url(url)
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    missing = re.search(r'database "([^"]+)" does not exist', str(exc))
    if parsed.get_backend_name() == "postgresql" and missing:
        host, port = parsed.host or "localhost", parsed.port or 5432
        user = f" -U {parsed.username}" if parsed.username else ""
        return UnavailableError(
            f'PostgreSQL database "{missing.group(1)}" does not exist on {host}:{port}; '
            f"create it with: createdb -h {host} -p {port}{user} {missing.group(1)}"
        )
    safe = parsed.render_as_string(hide_password=True)
    return UnavailableError(f"cannot open the database {safe}: {reason}")


def write_engine(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions take SQLite's write lock when they begin.

    A SQLite transaction that reads and then writes cannot wait for another writer (it fails with
    "database is locked" at once); one that begins IMMEDIATE waits up to the busy timeout instead.
    On PostgreSQL this changes nothing.
    """
    return engine.execution_options(sqlite_begin_immediate=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN (see _sqlite_on_begin) instead of pysqlite's
    # implicit one, which would start every transaction DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # In WAL mode NORMAL is durable against application crashes and keeps the database
        # consistent on power loss (the last commits may roll back); it avoids an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get("sqlite_begin_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
