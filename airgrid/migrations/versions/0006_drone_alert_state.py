"""telemetry: raised alerts per drone, for the worker that takes a drone over

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drone_alert_state",
        sa.Column("drone_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("event_time_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("drone_id", "kind", "subject_id", name="pk_drone_alert_state"),
    )


def downgrade() -> None:
    op.drop_table("drone_alert_state")
