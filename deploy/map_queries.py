"""The live map's SQL: one query per Geomap layer, over the operator map views only.

Grafana runs them through its PostgreSQL datasource as the read-only `airgrid_grafana` role
(migration 0007 creates the views and the role); tests/observability/test_map_sql.py runs the
same text, macros expanded, against a migrated PostgreSQL; scripts/render_map.py draws it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.cog import builder as cog_builder
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.models import dashboard as dashboard_models

from airgrid.operator_map import ROLE, VIEWS

__all__ = ["HOLES", "LAYERS", "OVERDUE", "POSTGRES", "ROLE", "VIEWS", "Layer", "SqlTarget"]

POSTGRES = dashboard_models.DataSourceRef(
    type_val="grafana-postgresql-datasource", uid="airgrid-postgres"
)


class SqlQuery(cog_variants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (the SDK ships no builder for it)."""

    def __init__(self, ref_id: str, raw_sql: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql

    def to_json(self) -> dict[str, Any]:
        return {
            "refId": self.ref_id,
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }


class SqlTarget(cog_builder.Builder[SqlQuery]):
    def __init__(self, ref_id: str, raw_sql: str) -> None:
        self._query = SqlQuery(ref_id, raw_sql)

    def build(self) -> SqlQuery:
        return self._query


# The epoch macros are whole seconds: a fix within the range's last second is still in it.


@dataclass(frozen=True)
class Layer:
    """One Geomap layer: its query, and the field that colours its markers."""

    name: str
    ref_id: str
    sql: str
    colour_by: str
    label: str | None  # the field shown as text beside each marker, if any
    symbol: str = "circle"  # one of Grafana's img/icons/marker/<symbol>.svg
    opacity: float = 0.85


DRONES = Layer(
    "Drones by status",
    "A",
    "SELECT drone_id, status, latitude, longitude, battery_pct, mission_stage, incident_id,\n"
    "  fix_time AS time\n"
    "FROM map_drones\n"
    "WHERE fix_time_ms IS NULL\n"
    "   OR (fix_time_ms >= $__unixEpochFrom()::bigint * 1000\n"
    "       AND fix_time_ms < ($__unixEpochTo()::bigint + 1) * 1000)\n"
    "ORDER BY drone_id",
    colour_by="status",
    label="drone_id",
)
INCIDENTS = Layer(
    "Open incidents by priority and stage",
    "B",
    "SELECT incident_id, priority, stage, type, department, latitude, longitude,\n"
    "  missions, accepted_at AS time\n"
    "FROM map_incidents\n"
    "WHERE accepted_at <= $__timeTo()\n"
    "ORDER BY priority, accepted_at",
    colour_by="priority",
    label="stage",
)
NESTS = Layer(
    "Nests and weather holds",
    "C",
    "SELECT nest_id, name, state, weather_hold, wind_mps, wind_hold_mps, latitude, longitude,\n"
    "  drones_home\n"
    "FROM map_nests\n"
    "ORDER BY nest_id",
    colour_by="state",
    label="name",
)
# Cells no available drone reaches within the SLA, from dispatch's read model (migration
# 0009): translucent squares at the cell centres, drawn under the other layers. The view holds
# the current holes only, so the dashboard's time range does not apply.
HOLES = Layer(
    "Coverage holes",
    "D",
    "SELECT zone, cell, coverage, cell_m, latitude, longitude, computed_at AS time\n"
    "FROM map_coverage_holes\n"
    "ORDER BY zone, cell",
    colour_by="coverage",
    label=None,
    symbol="square",
    opacity=0.35,
)
# The most overdue cells of each active inspection plan, from telemetry's read model
# (migration 0013): squares coloured by how late (never seen, late, a whole interval or more
# past the deadline), over the holes and under the markers. Current cells only, like the holes.
OVERDUE = Layer(
    "Overdue inspection cells",
    "E",
    "SELECT plan, department, cell, overdue, overdue_s, lateness, last_seen, cell_m,\n"
    "  latitude, longitude, computed_at AS time\n"
    "FROM map_overdue_cells\n"
    "ORDER BY plan, cell",
    colour_by="overdue",
    label=None,
    symbol="square",
    opacity=0.4,
)
# Drawing order: the first layer lies at the bottom.
LAYERS = (HOLES, OVERDUE, DRONES, INCIDENTS, NESTS)
