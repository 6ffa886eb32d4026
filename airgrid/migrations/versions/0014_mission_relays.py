"""missions of relay chains name the mission they relieve

Revision ID: 0014_mission_relays
Revises: 0013_map_overdue_cells
Create Date: 2026-12-05 12:00:00

A relief mission names the mission on scene it takes over from, so the chain is visible
and a restarted worker carries it on. A relief's slot is the holder's plus a multiple of
drones_needed, so the unique index of active slots holds for both missions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_mission_relays"
down_revision = "0013_map_overdue_cells"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("missions", sa.Column("relieves", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("missions", "relieves")
