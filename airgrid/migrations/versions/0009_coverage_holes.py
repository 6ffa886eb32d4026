"""coverage holes: the cells no available drone reaches within the SLA, for the operators' map

Revision ID: 0009_coverage_holes
Revises: 0008_outbox_trace
Create Date: 2026-12-08 09:00:00

Dispatch computes coverage in memory; its fenced writer keeps this table equal to the current
holes of its zone (services/dispatch/holes_read_model.py), so the map reads a few thousand
rows at most and never the services' write tables. The view `map_coverage_holes` is what the
read-only role `airgrid_grafana` (migration 0007) may read; view and grant are PostgreSQL only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airgrid.db import UTCDateTime

revision = "0009_coverage_holes"
down_revision = "0008_outbox_trace"
branch_labels = None
depends_on = None

ROLE = "airgrid_grafana"

MAP_COVERAGE_HOLES = """
CREATE VIEW map_coverage_holes AS
SELECT
  h.zone,
  h.cell,
  'hole'::text AS coverage,
  h.lat AS latitude,
  h.lon AS longitude,
  h.cell_m,
  h.computed_at
FROM coverage_holes h
"""


def upgrade() -> None:
    op.create_table(
        "coverage_holes",
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("cell_m", sa.Float(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("zone", "cell", name="pk_coverage_holes"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(MAP_COVERAGE_HOLES)
    op.execute(f"GRANT SELECT ON map_coverage_holes TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP VIEW IF EXISTS map_coverage_holes")
    op.drop_table("coverage_holes")
