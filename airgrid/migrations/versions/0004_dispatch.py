"""dispatch: duplicate links and patrol sorties on incidents

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: a plain ADD COLUMN on PostgreSQL and SQLite alike.
    op.add_column("incidents", sa.Column("linked_to", sa.String(length=40), nullable=True))
    op.add_column("incidents", sa.Column("patrol_route", sa.String(length=64), nullable=True))
    op.create_index("ix_incidents_linked_to", "incidents", ["linked_to"])


def downgrade() -> None:
    op.drop_index("ix_incidents_linked_to", table_name="incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("patrol_route")
        batch.drop_column("linked_to")
