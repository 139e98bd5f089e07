"""labeling: classes, review tasks and submissions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('open', 'leased')"
ACTIVE_AUDIT = "status IN ('open', 'leased') AND reason = 'audit'"
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "label_classes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_classes")),
        sa.UniqueConstraint("name", name=op.f("uq_label_classes_name")),
    )
    op.create_table(
        "label_tasks",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("frame_pk", BIG_ID, nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("leased_by", sa.Integer(), nullable=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("dhash", sa.BigInteger(), nullable=True),
        sa.Column("top_class", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["frame_pk"],
            ["frames.pk"],
            name=op.f("fk_label_tasks_frame_pk_frames"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_label_tasks_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["leased_by"],
            ["users.id"],
            name=op.f("fk_label_tasks_leased_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_tasks")),
    )
    op.create_index(op.f("ix_label_tasks_frame_pk"), "label_tasks", ["frame_pk"])
    op.create_index("ix_label_tasks_device_id", "label_tasks", ["device_id", "id"])
    for name, columns, unique, where in (
        ("ux_label_tasks_active_frame", ["frame_pk"], True, ACTIVE),
        ("ix_label_tasks_queue", ["priority", "id"], False, ACTIVE),
        ("ix_label_tasks_audit_queue", ["id"], False, ACTIVE_AUDIT),
    ):
        op.create_index(
            name,
            "label_tasks",
            columns,
            unique=unique,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )
    op.create_table(
        "label_submissions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("frame_pk", BIG_ID, nullable=False),
        sa.Column("task_id", BIG_ID, nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_open", sa.Float(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("tp", sa.Integer(), nullable=False),
        sa.Column("fp", sa.Integer(), nullable=False),
        sa.Column("fn", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["frame_pk"],
            ["frames.pk"],
            name=op.f("fk_label_submissions_frame_pk_frames"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["label_tasks.id"],
            name=op.f("fk_label_submissions_task_id_label_tasks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_label_submissions_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_submissions")),
    )
    op.create_index("ix_label_submissions_frame_pk", "label_submissions", ["frame_pk", "id"])
    op.create_index("ix_label_submissions_task_id", "label_submissions", ["task_id"])


def downgrade() -> None:
    op.drop_table("label_submissions")
    op.drop_table("label_tasks")
    op.drop_table("label_classes")
