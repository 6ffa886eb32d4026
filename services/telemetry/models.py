"""Telemetry tables: the track history, the durable alert state, the freshness snapshot and
its overdue cells for the operators' map, and the cases (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

from airgrid.db import Base, UTCDateTime

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

# The read model of the operators' map (view map_overdue_cells): per deployment, the most
# overdue cells of each active plan, as the replica that last merged the snapshot computed
# them (overdue_read_model.py). lateness is overdue_s over the plan's interval; it and
# overdue_s are NULL for a cell never seen with no window opening to count from.
inspection_overdue_cells = sa.Table(
    "inspection_overdue_cells",
    Base.metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("plan", sa.String(64), primary_key=True),
    sa.Column("cell", sa.Integer, primary_key=True),
    sa.Column("department", sa.String(32), nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("cell_m", sa.Float, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
    sa.Column("overdue_s", sa.Float, nullable=True),
    sa.Column("lateness", sa.Float, nullable=True),
    sa.Column("computed_at", UTCDateTime(), nullable=False),
)

# The case keeper's cases (case_store.py): each case as it is after its latest change.
cases = sa.Table(
    "cases",
    Base.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("scenario", sa.String(64), nullable=False),
    sa.Column("departments", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("first_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("detection_count", sa.Integer, nullable=False),
    sa.Column("best_detection_id", sa.String(128), nullable=False),
    sa.Column("best_confidence", sa.Float, nullable=False),
    sa.Column("best_media_uri", sa.Text, nullable=False),
    sa.Column("best_media_sha256", sa.String(64), nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_cases_status_last_seen", "status", "last_seen_ms"),
    sa.Index("ix_cases_scenario", "scenario"),
)

# Which case each detection counted in: a replayed detection is found here and not counted
# twice, whatever became of its case.
case_detections = sa.Table(
    "case_detections",
    Base.metadata,
    sa.Column("detection_id", sa.String(128), primary_key=True),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Index("ix_case_detections_case", "case_id"),
)
