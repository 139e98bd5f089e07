"""drift: a check records the steps its windows were thinned by before the tests

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift_checks") as batch:
        batch.add_column(
            sa.Column("reference_stride", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(
            sa.Column("window_stride", sa.Integer(), nullable=False, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("drift_checks") as batch:
        batch.drop_column("window_stride")
        batch.drop_column("reference_stride")
