"""The operator map's read model in PostgreSQL: the views Grafana's live map reads and the
role that may read them (migrations 0007_operator_map, 0009_coverage_holes and
0013_map_overdue_cells; SQLite has neither)."""

from __future__ import annotations

ROLE = "airgrid_grafana"
VIEWS = ("map_drones", "map_incidents", "map_nests", "map_coverage_holes", "map_overdue_cells")
DASHBOARDS_DIR = "deploy/grafana/dashboards/"


def where_line(database_url: str) -> str:
    """One line for `airgrid up`: where an operator finds the dashboards and the map's data."""
    views = ", ".join(VIEWS)
    if database_url.startswith("postgresql"):
        found = f"views {views} (role {ROLE}, read-only)"
    else:
        found = f"views {views} on PostgreSQL only (set AIRGRID_DATABASE_URL)"
    return f"[bold]grafana[/] dashboards in {DASHBOARDS_DIR}; live map data: {found}"
