"""stats rollups: hourly frame and class counts maintained by ingest, backfilled here

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "class_rollups",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("class_name", sa.String(length=64), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("detections", sa.Integer(), nullable=False),
        sa.Column("conf_0", sa.Integer(), nullable=False),
        sa.Column("conf_1", sa.Integer(), nullable=False),
        sa.Column("conf_2", sa.Integer(), nullable=False),
        sa.Column("conf_3", sa.Integer(), nullable=False),
        sa.Column("conf_4", sa.Integer(), nullable=False),
        sa.Column("conf_5", sa.Integer(), nullable=False),
        sa.Column("conf_6", sa.Integer(), nullable=False),
        sa.Column("conf_7", sa.Integer(), nullable=False),
        sa.Column("conf_8", sa.Integer(), nullable=False),
        sa.Column("conf_9", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_class_rollups_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hour", "device_id", "class_name", name=op.f("pk_class_rollups")),
    )
    op.create_table(
        "frame_rollups",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("detections", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_frame_rollups_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hour", "device_id", name=op.f("pk_frame_rollups")),
    )

    _backfill()


def _hour(column: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"strftime('%Y-%m-%d %H:00:00.000000', {column})"


def _bucket() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "CAST(floor(confidence * 10) AS INTEGER)"
    return "CAST(confidence * 10 AS INTEGER)"


def _backfill() -> None:
    """Rollups for frames stored before this revision (ingest keeps them from now on)."""
    hour = _hour("captured_at")
    op.execute(
        "INSERT INTO frame_rollups (hour, device_id, frames, detections) "
        f"SELECT {hour}, device_id, count(*), sum(detection_count) FROM frames "
        f"GROUP BY {hour}, device_id"
    )
    bins = ", ".join(
        f"sum(CASE WHEN {_bucket()} {'>=' if k == 9 else '='} {k} THEN 1 ELSE 0 END)"
        for k in range(10)
    )
    columns = ", ".join(f"conf_{k}" for k in range(10))
    op.execute(
        f"INSERT INTO class_rollups (hour, device_id, class_name, frames, detections, {columns}) "
        f"SELECT {hour}, device_id, class_name, count(DISTINCT frame_pk), count(*), {bins} "
        f"FROM detections GROUP BY {hour}, device_id, class_name"
    )


def downgrade() -> None:
    op.drop_table("frame_rollups")
    op.drop_table("class_rollups")
