"""inspection plans and the scenario catalogue

Revision ID: 0010_inspection_plans
Revises: 0009_coverage_holes
Create Date: 2026-12-04 21:00:00

Plans (area or corridor, revisit interval, daily windows) belong to a department, so the
foreign key makes deleting a department that still owns plans a conflict. Scenarios name
their owner departments in a JSON list, checked by the registry on every write.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airgrid.db import UTCDateTime

revision = "0010_inspection_plans"
down_revision = "0009_coverage_holes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection_plans",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("width_m", sa.Float(), nullable=True),
        sa.Column("revisit_interval_s", sa.Integer(), nullable=False),
        sa.Column("active_windows", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["department"],
            ["departments.code"],
            name=op.f("fk_inspection_plans_department_departments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_plans")),
    )
    op.create_index(
        op.f("ix_inspection_plans_department"), "inspection_plans", ["department"], unique=False
    )
    op.create_table(
        "scenarios",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("merge_radius_m", sa.Float(), nullable=False),
        sa.Column("merge_window_s", sa.Integer(), nullable=False),
        sa.Column("escalation", sa.JSON(), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_scenarios")),
    )


def downgrade() -> None:
    op.drop_table("scenarios")
    op.drop_index(op.f("ix_inspection_plans_department"), table_name="inspection_plans")
    op.drop_table("inspection_plans")
