"""Alembic environment: always run programmatically with a connection (see server/migrate.py)."""

from __future__ import annotations

from alembic import context

from visionloop.server.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `visionloop db upgrade` (visionloop.server.migrate)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
