"""overdue inspection cells: the cells each plan is most late on, for the operators' map

Revision ID: 0013_map_overdue_cells
Revises: 0012_cases
Create Date: 2026-12-05 07:00:00

Telemetry's freshness keeper holds every cell's last-seen time in memory (its merged snapshot
is binary, in `inspection_freshness`); the replica that has just merged that snapshot writes
the most overdue cells of each active plan here, in the merge's transaction
(services/telemetry/overdue_read_model.py). So the map reads a few thousand rows at most and
never decodes the snapshot. The view `map_overdue_cells` is what the read-only role
`airgrid_grafana` (migration 0007) may read; view and grant are PostgreSQL only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airgrid.db import UTCDateTime

revision = "0013_map_overdue_cells"
down_revision = "0012_cases"
branch_labels = None
depends_on = None

ROLE = "airgrid_grafana"

# `overdue` colours the marker: never seen, late by less than one revisit interval past the
# deadline, or by one interval or more.
MAP_OVERDUE_CELLS = """
CREATE VIEW map_overdue_cells AS
SELECT
  o.stream,
  o.plan,
  o.department,
  o.cell,
  CASE
    WHEN o.lateness IS NULL THEN 'never_seen'
    WHEN o.lateness >= 1 THEN 'very_late'
    ELSE 'late'
  END AS overdue,
  o.overdue_s,
  o.lateness,
  to_timestamp(o.last_seen_ms / 1000.0) AS last_seen,
  o.lat AS latitude,
  o.lon AS longitude,
  o.cell_m,
  o.computed_at
FROM inspection_overdue_cells o
"""


def upgrade() -> None:
    op.create_table(
        "inspection_overdue_cells",
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("cell_m", sa.Float(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.Column("overdue_s", sa.Float(), nullable=True),
        sa.Column("lateness", sa.Float(), nullable=True),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", "plan", "cell", name=op.f("pk_inspection_overdue_cells")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(MAP_OVERDUE_CELLS)
    op.execute(f"GRANT SELECT ON map_overdue_cells TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP VIEW IF EXISTS map_overdue_cells")
    op.drop_table("inspection_overdue_cells")
