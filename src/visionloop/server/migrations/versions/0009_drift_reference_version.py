"""drift: a check against a model version's reference profile names the version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift_checks") as batch:
        batch.add_column(sa.Column("reference_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drift_checks") as batch:
        batch.drop_column("reference_version")
