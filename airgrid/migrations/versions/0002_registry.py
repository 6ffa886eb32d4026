"""registry: audit log, entity versions, credential lifecycle

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airgrid.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot alter tables in place.
    with op.batch_alter_table("departments") as batch:
        batch.add_column(
            sa.Column("feed_preferences", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("drones") as batch:
        batch.add_column(
            sa.Column("battery_wh", sa.Float(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("replaces", sa.String(length=40), nullable=True))
    op.create_table(
        "registry_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("entity_kind", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_audit")),
    )
    op.create_index("ix_registry_audit_entity", "registry_audit", ["entity_kind", "entity_id"])
    op.create_index("ix_registry_audit_at", "registry_audit", ["at"])
    op.create_index(op.f("ix_drones_home_nest"), "drones", ["home_nest"])


def downgrade() -> None:
    op.drop_index(op.f("ix_drones_home_nest"), table_name="drones")
    op.drop_index("ix_registry_audit_at", table_name="registry_audit")
    op.drop_index("ix_registry_audit_entity", table_name="registry_audit")
    op.drop_table("registry_audit")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("replaces")
    with op.batch_alter_table("drones") as batch:
        batch.drop_column("battery_wh")
    with op.batch_alter_table("departments") as batch:
        batch.drop_column("feed_preferences")
