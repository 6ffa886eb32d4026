"""telemetry: track history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "track_points",
        sa.Column("drone_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("alt_m", sa.Float(), nullable=False),
        sa.Column("ground_speed_mps", sa.Float(), nullable=False),
        sa.Column("heading_deg", sa.Float(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=False),
        sa.Column("flight_mode", sa.SmallInteger(), nullable=False),
        sa.Column("mission_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("drone_id", "seq", name="pk_track_points"),
    )
    op.create_index("ix_track_points_drone_time", "track_points", ["drone_id", "event_time_ms"])
    op.create_index("ix_track_points_time", "track_points", ["event_time_ms"])


def downgrade() -> None:
    op.drop_index("ix_track_points_time", table_name="track_points")
    op.drop_index("ix_track_points_drone_time", table_name="track_points")
    op.drop_table("track_points")
