"""The live map's overdue inspection cells against a real, migrated PostgreSQL: two telemetry
replicas' freshness keepers merge their sightings through the stored snapshot, the one that
merges writes the most overdue cells of each plan, and the layer's query, taken from the
rendered dashboard with Grafana's macros expanded, returns them as the read-only
`airgrid_grafana` role with the columns the layer's markers need."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.reference import load_reference
from airgrid.v1 import registry_pb2, telemetry_pb2
from deploy.map_queries import OVERDUE, ROLE
from deploy.sql_macros import TimeRange, expand
from services.telemetry.freshness_keeper import FreshnessKeeper
from tests.observability.promql import DASHBOARDS

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
HOUR_MS = 3_600_000
NEEDED = {"latitude", "longitude", OVERDUE.colour_by, "plan", "department", "cell_m"}


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def _layer_sql() -> str:
    """The overdue layer's SQL as deployed (the rendered dashboard JSON)."""
    dashboard = json.loads((DASHBOARDS / "operator-map.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["type"] == "geomap"]
    (layer,) = [x for x in panel["options"]["layers"] if x["name"] == OVERDUE.name]
    assert layer["filterData"]["options"] == OVERDUE.ref_id
    assert layer["location"]["latitude"] == "latitude"
    assert layer["location"]["longitude"] == "longitude"
    (sql,) = [t["rawSql"] for t in panel["targets"] if t["refId"] == OVERDUE.ref_id]
    return str(sql)


async def _on_the_map(engine: AsyncEngine, plans: set[str], now_ms: int) -> list[dict[str, Any]]:
    """The layer's rows of these plans, run as Grafana's role (the panel shows every plan's)."""
    end = datetime.fromtimestamp(now_ms / 1000, UTC)
    window = TimeRange(start=end - timedelta(minutes=15), end=end)
    sql = f"SELECT * FROM ({expand(_layer_sql(), window)}) AS layer"
    names = ", ".join(f"'{p}'" for p in sorted(plans))
    async with engine.connect() as connection:
        await connection.execute(text(f"SET LOCAL ROLE {ROLE}"))
        result = await connection.execute(text(f"{sql} WHERE plan IN ({names})"))
        return [dict(row._mapping) for row in result]


def _area_plan(keeper: FreshnessKeeper, plan_id: str, department: str, centre_cell: int,
               half_m: float) -> registry_pb2.RegistryChange:  # fmt: skip
    """An all-day area plan: the square of half side `half_m` around a cell's centre."""
    x, y = keeper.grid.xy[centre_cell]
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    ring = [keeper.grid.projection.to_lon_lat(x + dx * half_m, y + dy * half_m)
            for dx, dy in corners]  # fmt: skip
    plan = registry_pb2.InspectionPlan(
        id=plan_id,
        name=plan_id,
        department=department,
        kind="area",
        ring_lon=[p[0] for p in ring],
        ring_lat=[p[1] for p in ring],
        revisit_interval_s=HOUR_MS // 1000,
    )
    return registry_pb2.RegistryChange(inspection_plan=plan)


def _seen(keeper: FreshnessKeeper, cell: int, at_ms: int) -> telemetry_pb2.Telemetry:
    """A fix at 120 m over a cell's centre: its footprint (about 64 m) sees that cell only."""
    lon, lat = keeper.grid.cell_centre(cell)
    return telemetry_pb2.Telemetry(
        drone_id="dr-map-overdue",
        lon=lon,
        lat=lat,
        alt_m=120.0,
        event_time_ms=at_ms,
        flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
    )


async def test_the_overdue_layer_shows_what_the_merged_replicas_know(
    engine: AsyncEngine, settings: Settings
) -> None:
    run = uuid.uuid4().hex[:6]
    own = settings.model_copy(update={"topic_prefix": f"o{run}."})
    now = {"ms": int(time.time()) * 1000}
    first = FreshnessKeeper(REFERENCE, own, clock=lambda: now["ms"])
    second = FreshnessKeeper(REFERENCE, own, clock=lambda: now["ms"])
    urban, water = f"map-urban-{run}", f"map-water-{run}"
    centre = len(first.grid) // 2
    # 3 km east of it: the two plans' squares do not touch.
    east = int(np.argmin(np.hypot(*(first.grid.xy - first.grid.xy[centre] - (3000.0, 0.0)).T)))
    for keeper in (first, second):
        for plan_id, department, cell, half_m in ((urban, "urban", centre, 600.0),
                                                  (water, "water", east, 300.0)):  # fmt: skip
            change = _area_plan(keeper, plan_id, department, cell, half_m)
            keeper.on_registry_change(f"inspection-plan:{plan_id}", change)
    first.report()  # the plans' masks are built before the first answer
    urban_cells = [int(c) for c in np.flatnonzero(first.grid.cells_of(first.grid.plans[0]))]
    water_cells = [int(c) for c in np.flatnonzero(first.grid.cells_of(first.grid.plans[1]))]
    assert first.grid.plans[0].id == urban and len(urban_cells) >= 16 and len(water_cells) >= 4
    assert not set(urban_cells) & set(water_cells)
    very_late, late, fresh_elsewhere = urban_cells[0], urban_cells[1], urban_cells[2]
    # Two hours ago (a whole interval past the deadline), 90 minutes ago (half of one), and
    # 10 minutes ago on the other replica only (fresh).
    first.observe([_seen(first, very_late, now["ms"] - 2 * HOUR_MS),
                   _seen(first, late, now["ms"] - 90 * 60_000)])  # fmt: skip
    first.observe([_seen(first, c, now["ms"] - 50 * 60_000) for c in water_cells])
    second.observe([_seen(second, fresh_elsewhere, now["ms"] - 10 * 60_000)])

    await first.sync(engine)
    rows = await _on_the_map(engine, {urban, water}, now["ms"])
    assert rows, "the merging replica wrote the overdue cells"
    assert NEEDED <= set(rows[0]), f"the layer lacks {NEEDED - set(rows[0])}"
    by_cell = {(r["plan"], r["cell"]): r for r in rows}
    assert set(by_cell) == {(urban, c) for c in urban_cells}, "water's cells are all fresh"
    assert by_cell[(urban, very_late)]["overdue"] == "very_late"
    assert by_cell[(urban, very_late)]["overdue_s"] == pytest.approx(3600.0)
    assert by_cell[(urban, very_late)]["lateness"] == pytest.approx(1.0)
    assert by_cell[(urban, late)]["overdue"] == "late"
    assert by_cell[(urban, late)]["overdue_s"] == pytest.approx(1800.0)
    assert by_cell[(urban, urban_cells[3])]["overdue"] == "never_seen"
    assert by_cell[(urban, fresh_elsewhere)]["overdue"] == "never_seen", "not merged yet"
    lon, lat = first.grid.cell_centre(late)
    assert (by_cell[(urban, late)]["longitude"], by_cell[(urban, late)]["latitude"]) == (
        pytest.approx(lon, abs=1e-6),
        pytest.approx(lat, abs=1e-6),
    )
    assert {(r["department"], r["cell_m"]) for r in rows} == {("urban", own.coverage_cell_m)}

    # The second replica merges at once: it learns everything stored but leaves the rows,
    # written less than half a sync period ago, to the first.
    await second.sync(engine)
    assert await _on_the_map(engine, {urban, water}, now["ms"]) == rows

    # Later, the first replica merges again: it now holds the second's sighting, and the map
    # with it; its water cells are overdue now too.
    now["ms"] += 20 * 60_000
    await first.sync(engine)
    rows = await _on_the_map(engine, {urban, water}, now["ms"])
    by_cell = {(r["plan"], r["cell"]): r for r in rows}
    assert (urban, fresh_elsewhere) not in by_cell, "the other replica's sighting is on the map"
    assert {c for p, c in by_cell if p == water} == set(water_cells)
    assert {r["department"] for r in rows if r["plan"] == water} == {"water"}
    assert {r["overdue"] for r in rows if r["plan"] == water} == {"late"}

    # Bounded per plan, the latest first; a deleted plan's cells leave the map.
    second.overdue_cells.per_plan = 3
    second.on_registry_change(f"inspection-plan:{water}", None)
    now["ms"] += 10_000
    await second.sync(engine)
    rows = await _on_the_map(engine, {urban, water}, now["ms"])
    assert {r["plan"] for r in rows} == {urban}
    assert len(rows) == 3
    assert {r["overdue"] for r in rows} == {"never_seen"}, "never seen ranks first"
