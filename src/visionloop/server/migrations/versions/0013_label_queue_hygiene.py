"""labeling queue hygiene: expired tasks, the age clock, per-device indexes, duplicate counters

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('open', 'leased')"


def upgrade() -> None:
    # Plain ADD COLUMN (nullable): no table copy on SQLite, no rewrite on PostgreSQL.
    op.add_column("label_tasks", sa.Column("age_bonus", sa.Float(), nullable=True))
    op.add_column("label_tasks", sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_label_tasks_device_active",
        "label_tasks",
        ["device_id", "priority"],
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_index("ix_label_tasks_device_done_at", "label_tasks", ["device_id", "done_at"])
    op.create_table(
        "label_queue_counters",
        sa.Column("device_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("last_duplicate_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("label_queue_counters")
    op.drop_index("ix_label_tasks_device_done_at", table_name="label_tasks")
    op.drop_index("ix_label_tasks_device_active", table_name="label_tasks")
    with op.batch_alter_table("label_tasks") as batch:
        batch.drop_column("expired_at")
        batch.drop_column("age_bonus")
