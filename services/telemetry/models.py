"""Telemetry tables: the track history, the durable alert state and the freshness snapshot
(SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

from airgrid.db import Base

track_points = sa.Table(
    "track_points",
    Base.metadata,
    sa.Column("drone_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("event_time_ms", sa.BigInteger, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("alt_m", sa.Float, nullable=False),
    sa.Column("ground_speed_mps", sa.Float, nullable=False),
    sa.Column("heading_deg", sa.Float, nullable=False),
    sa.Column("battery_pct", sa.Float, nullable=False),
    sa.Column("flight_mode", sa.SmallInteger, nullable=False),
    sa.Column("mission_id", sa.String(64), nullable=False),
    sa.Index("ix_track_points_drone_time", "drone_id", "event_time_ms"),
    sa.Index("ix_track_points_time", "event_time_ms"),
)

# Per drone and alert subject (kind, and zone for a breach): whether the alert is raised.
drone_alert_state = sa.Table(
    "drone_alert_state",
    Base.metadata,
    sa.Column("drone_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("event_time_ms", sa.BigInteger, nullable=False),
)

# Per deployment (its topic prefix): every coverage cell's last-seen time, the encoded
# airgrid.freshness snapshot, merged by all telemetry replicas (later time per cell).
inspection_freshness = sa.Table(
    "inspection_freshness",
    Base.metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("saved_ms", sa.BigInteger, nullable=False),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),
)
