"""cases and the detections each counted

Revision ID: 0012_cases
Revises: 0011_inspection_freshness
Create Date: 2026-12-05 10:00:00

The telemetry service's case keeper stores each case as it is after its latest change, and
which case every detection counted in, so a replayed detection is never counted twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_cases"
down_revision = "0011_inspection_freshness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("scenario", sa.String(length=64), nullable=False),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("detection_count", sa.Integer(), nullable=False),
        sa.Column("best_detection_id", sa.String(length=128), nullable=False),
        sa.Column("best_confidence", sa.Float(), nullable=False),
        sa.Column("best_media_uri", sa.Text(), nullable=False),
        sa.Column("best_media_sha256", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    op.create_index("ix_cases_status_last_seen", "cases", ["status", "last_seen_ms"])
    op.create_index("ix_cases_scenario", "cases", ["scenario"])
    op.create_table(
        "case_detections",
        sa.Column("detection_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("detection_id", name=op.f("pk_case_detections")),
    )
    op.create_index("ix_case_detections_case", "case_detections", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_case_detections_case", table_name="case_detections")
    op.drop_table("case_detections")
    op.drop_index("ix_cases_scenario", table_name="cases")
    op.drop_index("ix_cases_status_last_seen", table_name="cases")
    op.drop_table("cases")
