"""Real database outages for tests: a database the app can no longer reach, then back; or one
dropped and recreated empty.

``Outage`` wraps one migrated database of its own (never the session's shared PostgreSQL
database, never the shared server itself, which other tests use):

- PostgreSQL: a throwaway database on the test server. ``cut()`` forbids new connections to it
  (``ALTER DATABASE … ALLOW_CONNECTIONS false``) and terminates the open ones, as a failover or a
  crashed database does; ``restore()`` allows them again; ``recreate_empty()`` drops it and
  creates it again with no tables.
- SQLite: a file in a folder of ``tmp_path``. ``cut()`` moves the folder away and puts a plain
  file where it was, so the database file cannot be opened (root ignores permissions, so an
  unreadable folder would not do), and empties the app's pool: an open SQLite connection keeps
  its file, as a process that had it open would, so only new connections see the outage.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from support.db import PG_ADMIN_URL, _postgres_reachable
from visionloop.server.db import create_db_engine
from visionloop.server.migrate import upgrade


class Outage:
    """One migrated database and the means to take it away (see the module doc)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._admin: Engine | None = None
        self._dispose: Callable[[], None] = lambda: None
        if kind == "sqlite":
            self._folder = tmp_path / "db"
            self._away = tmp_path / "db-away"
            self.url = f"sqlite:///{self._folder / 'visionloop.db'}"
        else:
            self._name = f"visionloop_outage_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            self._admin = create_db_engine(PG_ADMIN_URL).execution_options(
                isolation_level="AUTOCOMMIT"
            )
            self._sql(f'CREATE DATABASE "{self._name}"')
            self.url = (
                make_url(PG_ADMIN_URL)
                .set(database=self._name)
                .render_as_string(hide_password=False)
            )
        self.migrate()

    def migrate(self, revision: str = "head") -> None:
        engine = create_db_engine(self.url, pool_size=1)
        try:
            upgrade(engine, revision)
        finally:
            engine.dispose()

    def watch(self, engine: Engine) -> None:
        """The app's engine, whose pool ``cut`` and ``recreate_empty`` empty on SQLite."""
        self._dispose = engine.dispose

    def cut(self) -> None:
        if self.kind == "sqlite":
            self._folder.rename(self._away)
            self._folder.write_text("not a folder")
            self._dispose()
            return
        self._sql(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS false')
        self._terminate()

    def restore(self) -> None:
        if self.kind == "sqlite":
            self._folder.unlink()
            self._away.rename(self._folder)
            return
        self._sql(f'ALTER DATABASE "{self._name}" ALLOW_CONNECTIONS true')

    def recreate_empty(self) -> None:
        """Drop the database and create it again with no tables (no migrations run)."""
        if self.kind == "sqlite":
            self._dispose()
            shutil.rmtree(self._folder)
            self._folder.mkdir()
            (self._folder / "visionloop.db").touch()
            return
        self._sql(f'DROP DATABASE "{self._name}" WITH (FORCE)')
        self._sql(f'CREATE DATABASE "{self._name}"')

    def close(self) -> None:
        if self._admin is not None:
            self._sql(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
            self._admin.dispose()

    def _terminate(self) -> None:
        self._sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self._name}' AND pid <> pg_backend_pid()"
        )

    def _sql(self, statement: str) -> None:
        assert self._admin is not None
        with self._admin.connect() as conn:
            conn.execute(text(statement))


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters of a test module's ``outage`` fixture (``@pytest.fixture(params=DATABASES)``)."""


@contextmanager
def own_database(kind: str, tmp_path: Path) -> Iterator[Outage]:
    """A migrated database of the caller's own (``kind``: sqlite or postgresql), which it can
    take away (``cut``), bring back (``restore``) or recreate empty; dropped afterwards. A
    PostgreSQL that is down skips the test (fails it under ``CI=true``), as ``db_url`` does."""
    if kind == "postgresql":
        problem = _postgres_reachable()
        if problem is not None:
            message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {problem}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
    db = Outage(kind, tmp_path)
    try:
        yield db
    finally:
        db.close()
