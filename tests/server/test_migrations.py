"""The packaged Alembic migrations: they build exactly the schema the models describe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import make_url

from support.db import PG_ADMIN_URL
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


@pytest.fixture
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_database")  # skips or fails as the other PG tests do
    name = f"visionloop_mig_{uuid.uuid4().hex[:8]}"
    admin = create_db_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize(
    "empty_db_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_rollup_migration_backfills_existing_frames(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    try:
        upgrade(engine, "0001")
        t0 = datetime(2026, 11, 26, 10, 59, 59, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                insert(Base.metadata.tables["devices"]),
                [{"id": 1, "name": "cam1", "created_at": t0}],
            )
            frames = [
                {
                    "pk": i + 1,
                    "id": uuid.uuid4(),
                    "device_id": 1,
                    "captured_at": t0 + timedelta(seconds=i),
                    "received_at": t0,
                    "model_version": "1",
                    "width": 64,
                    "height": 48,
                    "brightness": 0.5,
                    "contrast": 0.1,
                    "sharpness": 10.0,
                    "detection_count": 2,
                }
                for i in range(3)
            ]
            conn.execute(insert(Base.metadata.tables["frames"]), frames)
            dets = [
                {
                    "frame_pk": f["pk"],
                    "device_id": 1,
                    "captured_at": f["captured_at"],
                    "class_id": 0,
                    "class_name": "dent",
                    "confidence": conf,
                    "x1": 0.1,
                    "y1": 0.1,
                    "x2": 0.2,
                    "y2": 0.2,
                }
                for f in frames
                for conf in (0.05, 1.0)
            ]
            conn.execute(insert(Base.metadata.tables["detections"]), dets)
        upgrade(engine)
        with engine.connect() as conn:
            hours = conn.execute(
                text("SELECT frames, detections FROM frame_rollups ORDER BY hour")
            ).all()
            classes = conn.execute(
                text("SELECT frames, detections, conf_0, conf_9 FROM class_rollups ORDER BY hour")
            ).all()
        # 10:59:59 falls in the 10:00 hour, the next two frames in the 11:00 hour.
        assert [tuple(r) for r in hours] == [(1, 2), (2, 4)]
        assert [tuple(r) for r in classes] == [(1, 2, 1, 1), (2, 4, 2, 2)]
    finally:
        engine.dispose()
