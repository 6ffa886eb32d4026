"""inspection freshness snapshot

Revision ID: 0011_inspection_freshness
Revises: 0010_inspection_plans
Create Date: 2026-12-04 22:00:00

One row per deployment (topic prefix): every coverage cell's last-seen time, merged by the
telemetry replicas and read back at start, so freshness survives a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_inspection_freshness"
down_revision = "0010_inspection_plans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection_freshness",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("saved_ms", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_inspection_freshness")),
    )


def downgrade() -> None:
    op.drop_table("inspection_freshness")
