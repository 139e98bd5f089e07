"""The packaged Alembic migrations: they build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from visionloop.server.db import create_db_engine
from visionloop.server.migrate import current_revision, head_revision, upgrade
from visionloop.server.models import Base


def test_database_is_at_head(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_sqlite_is_configured(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sub' / 'v.db'}")
    try:
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert {"devices", "frames", "detections", "users", "sessions", "device_tokens"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    finally:
        engine.dispose()
