"""drift: a check's verdict ('inconclusive' when its windows hold too few independent frames)
and why; the alarm each check moved; alarm periods, so that no automatic reference is drawn
from frames captured during an alarm; why an alarm closed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("drift_checks") as batch:
        batch.add_column(
            sa.Column("verdict", sa.String(16), nullable=False, server_default="clean")
        )
        batch.add_column(sa.Column("verdict_reason", sa.String(500), nullable=True))
        batch.add_column(sa.Column("effective_frames", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("alarm_event", sa.String(8), nullable=True))
    op.execute("UPDATE drift_checks SET verdict = 'drifted' WHERE drifted")
    with op.batch_alter_table("drift_alarms") as batch:
        batch.add_column(sa.Column("streak_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.String(500), nullable=True))
    op.create_table(
        "drift_alarm_periods",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_check_id", BigId, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_check_id", BigId, nullable=True),
        sa.Column("close_reason", sa.String(500), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_drift_alarm_periods_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_alarm_periods")),
    )
    op.create_index(
        "ix_drift_alarm_periods_device_id_since",
        "drift_alarm_periods",
        ["device_id", "since"],
    )
    # An alarm open now has its period from when it opened (its first frames are not known).
    op.execute(
        "INSERT INTO drift_alarm_periods (device_id, since, opened_at, opened_check_id) "
        "SELECT device_id, opened_at, opened_at, COALESCE(last_check_id, 0) "
        "FROM drift_alarms WHERE is_open AND opened_at IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_drift_alarm_periods_device_id_since", table_name="drift_alarm_periods")
    op.drop_table("drift_alarm_periods")
    with op.batch_alter_table("drift_alarms") as batch:
        batch.drop_column("close_reason")
        batch.drop_column("streak_since")
    with op.batch_alter_table("drift_checks") as batch:
        batch.drop_column("alarm_event")
        batch.drop_column("effective_frames")
        batch.drop_column("verdict_reason")
        batch.drop_column("verdict")
