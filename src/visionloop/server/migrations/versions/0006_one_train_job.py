"""jobs: at most one train job queued or running (a partial unique index)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE_TRAIN = sa.text("kind = 'train' AND status IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index(
        "uq_jobs_one_active_train",
        "jobs",
        ["kind"],
        unique=True,
        sqlite_where=ACTIVE_TRAIN,
        postgresql_where=ACTIVE_TRAIN,
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_one_active_train", table_name="jobs")
