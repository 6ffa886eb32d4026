"""operator map: read-only views for Grafana's live map, and the role that reads them

Revision ID: 0007_operator_map
Revises: 0006
Create Date: 2026-11-30 09:00:00

The views answer from indexes the services already keep: a drone's last fix is one probe of
ix_track_points_drone_time per registered drone, its active mission one probe of the partial
unique index uq_missions_active_drone, open incidents a scan of ix_incidents_status. The role
`airgrid_grafana` may read these views and nothing else; a view reads its tables with its
owner's rights, so the role needs no grant on the services' tables.

PostgreSQL only: Grafana's SQL datasource is PostgreSQL, and SQLite has no roles.
"""

from __future__ import annotations

from alembic import op

revision = "0007_operator_map"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLE = "airgrid_grafana"
VIEWS = ("map_drones", "map_incidents", "map_nests")

# A fix older than this means the link is lost (telemetry's link_lost_seconds, 15 s by default,
# with one more period of slack for a write batch in flight).
_LINK_LOST_MS = 30_000

MAP_DRONES = f"""
CREATE VIEW map_drones AS
SELECT
  d.id AS drone_id,
  d.model,
  d.home_nest,
  CASE
    WHEN d.status <> 'active' THEN 'out_of_service'
    WHEN fix.event_time_ms IS NULL THEN 'no_position'
    WHEN fix.event_time_ms < (extract(epoch FROM now()) * 1000)::bigint - {_LINK_LOST_MS}
      THEN 'link_lost'
    WHEN m.id IS NOT NULL THEN 'on_mission'
    WHEN fix.flight_mode = 1 THEN 'docked'
    ELSE 'airborne'
  END AS status,
  COALESCE(fix.lat, n.lat) AS latitude,
  COALESCE(fix.lon, n.lon) AS longitude,
  fix.alt_m,
  fix.battery_pct,
  fix.flight_mode,
  fix.event_time_ms AS fix_time_ms,
  to_timestamp(fix.event_time_ms / 1000.0) AS fix_time,
  m.id AS mission_id,
  m.stage AS mission_stage,
  m.incident_id
FROM drones d
JOIN nests n ON n.id = d.home_nest
LEFT JOIN LATERAL (
  SELECT t.event_time_ms, t.lat, t.lon, t.alt_m, t.battery_pct, t.flight_mode
  FROM track_points t
  WHERE t.drone_id = d.id
  ORDER BY t.event_time_ms DESC
  LIMIT 1
) fix ON true
LEFT JOIN missions m
  ON m.drone_id = d.id AND m.stage IN ('assigned', 'launched', 'on_scene', 'returning')
"""

MAP_INCIDENTS = """
CREATE VIEW map_incidents AS
SELECT
  i.id AS incident_id,
  i.priority,
  i.status AS stage,
  i.type,
  i.department,
  i.lat AS latitude,
  i.lon AS longitude,
  i.patrol_route,
  i.linked_to,
  i.accepted_at,
  (
    SELECT count(*) FROM missions m
    WHERE m.incident_id = i.id AND m.stage IN ('assigned', 'launched', 'on_scene', 'returning')
  ) AS missions
FROM incidents i
WHERE i.status IN ('accepted', 'queued', 'assigned', 'launched', 'on_scene')
"""

MAP_NESTS = """
CREATE VIEW map_nests AS
SELECT
  n.id AS nest_id,
  n.name,
  n.status,
  n.wind_mps >= n.wind_hold_mps AS weather_hold,
  CASE
    WHEN n.status <> 'online' THEN n.status
    WHEN n.wind_mps >= n.wind_hold_mps THEN 'weather_hold'
    ELSE 'online'
  END AS state,
  n.wind_mps,
  n.wind_hold_mps,
  n.charging_slots,
  n.lat AS latitude,
  n.lon AS longitude,
  (SELECT count(*) FROM drones d WHERE d.home_nest = n.id) AS drones_home
FROM nests n
"""

# Roles belong to the cluster, not the database: another database of the same server may
# already have created it.
CREATE_ROLE = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
    CREATE ROLE {ROLE} NOLOGIN;
  END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (MAP_DRONES, MAP_INCIDENTS, MAP_NESTS, CREATE_ROLE):
        op.execute(statement)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT ON {', '.join(VIEWS)} TO {ROLE}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    # The role stays: other databases of the cluster may hold grants to it.
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
