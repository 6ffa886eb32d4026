"""outbox trace context: the W3C traceparent and tracestate of the work that wrote a row

Revision ID: 0008_outbox_trace
Revises: 0007_operator_map
Create Date: 2026-12-07 09:00:00

The relay publishes a row later, often from another task or process; the row keeps the
trace context of the request or decision that enqueued it, so the record continues that
trace. Nullable: rows written with tracing off, and every row written before, have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_outbox_trace"
down_revision = "0007_operator_map"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("tracestate", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
