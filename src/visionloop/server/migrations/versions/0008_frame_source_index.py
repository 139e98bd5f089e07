"""frames.source_index: the frame's number in its source (gaps show dropped frames; the
synthetic line's ground truth is re-rendered from it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both databases (no table rebuild on SQLite).
    op.add_column("frames", sa.Column("source_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frames") as batch:
        batch.drop_column("source_index")
