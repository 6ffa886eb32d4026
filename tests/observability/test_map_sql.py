"""The live map's SQL against a real, migrated PostgreSQL: entities written through the
services' own models and track store, each Geomap layer's query taken from the rendered
dashboard, Grafana's macros expanded as Grafana does, run as the read-only `airgrid_grafana`
role; every layer returns the columns its markers need, with the entities written. The
coverage holes layer reads what dispatch's holes read model writes from a real coverage pass."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.reference import load_reference
from airgrid.v1 import telemetry_pb2
from deploy.map_queries import DRONES, HOLES, LAYERS, OVERDUE, ROLE, VIEWS
from deploy.sql_macros import TimeRange, expand
from services.dispatch.core_feed import core_settings
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import DroneView, NestView
from services.dispatch.holes_read_model import HolesReadModel
from services.dispatch.models import IncidentRow, MissionRow
from services.dispatch.writer_lock import WriterLock, WriterLockLost
from services.registry.models import DroneRow, NestRow
from services.telemetry.store import row_of, write_points
from tests.observability.promql import DASHBOARDS

pytestmark = pytest.mark.integration

# What each layer's markers need: position, the colour field and the label field.
NEEDED = {
    layer.ref_id: {"latitude", "longitude", layer.colour_by}
    | ({layer.label} if layer.label else set())
    for layer in LAYERS
}
# The layers the `world` fixture fills; the holes layer has a test of its own, the overdue
# cells layer a file of its own (test_map_overdue_sql.py).
ENTITY_LAYERS = {layer.ref_id for layer in LAYERS} - {HOLES.ref_id, OVERDUE.ref_id}


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


def _panel_sql() -> dict[str, str]:
    """refId → SQL of the live map panel, as deployed (the rendered dashboard JSON)."""
    dashboard = json.loads((DASHBOARDS / "operator-map.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["type"] == "geomap"]
    layers = panel["options"]["layers"]
    assert {layer["filterData"]["options"] for layer in layers} == set(NEEDED)
    for layer in layers:
        assert layer["location"] == {
            "mode": "coords",
            "latitude": "latitude",
            "longitude": "longitude",
        }
    return {t["refId"]: t["rawSql"] for t in panel["targets"]}


def _drone(drone_id: str, nest_id: str, status: str = "active") -> DroneRow:
    return DroneRow(
        id=drone_id,
        model="M30T",
        home_nest=nest_id,
        capabilities=["thermal"],
        cruise_speed_mps=15.0,
        max_speed_mps=20.0,
        climb_rate_mps=5.0,
        cruise_altitude_m=120.0,
        endurance_s=2400.0,
        launch_delay_s=20.0,
        status=status,
    )


def _fix(drone_id: str, seq: int, at: datetime, mode: int, lon: float, lat: float) -> Any:
    return row_of(
        telemetry_pb2.Telemetry(
            drone_id=drone_id,
            seq=seq,
            event_time_ms=int(at.timestamp() * 1000),
            lon=lon,
            lat=lat,
            alt_m=0.0 if mode == 1 else 110.0,
            battery_pct=81.0,
            flight_mode=mode,  # type: ignore[arg-type]
        )
    )


def _past_a_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=437_000)


def _incident(incident_id: str, priority: int, status: str, accepted_at: datetime) -> IncidentRow:
    return IncidentRow(
        id=incident_id,
        department="fire",
        reported_by="test",
        type="fire",
        priority=priority,
        lon=114.42,
        lat=30.47,
        geometry={"type": "Point", "coordinates": [114.42, 30.47]},
        required_capabilities=[],
        drones_needed=1,
        on_scene_seconds=600,
        description="",
        shared_with=[],
        status=status,
        accepted_at=accepted_at,
    )


@pytest.fixture(scope="module")
async def world(engine: AsyncEngine) -> dict[str, str]:
    """Nests, drones, their last fixes, incidents and a mission, each with ids of this run."""
    run = uuid.uuid4().hex[:6]
    ids = {
        name: f"map-{name}-{run}"
        for name in (
            "nest",
            "windy",
            "closed",
            "docked",
            "flying",
            "silent",
            "stale",
            "grounded",
            "unseen",
            "p1",
            "p3",
            "done",
            "future",
            "mission",
        )
    }
    now = datetime.now(UTC)
    async with session_factory(engine)() as session, session.begin():
        session.add_all(
            [
                NestRow(id=ids["nest"], name="Guanggu 1", lon=114.40, lat=30.48, charging_slots=4),
                NestRow(
                    id=ids["windy"],
                    name="Huashan 2",
                    lon=114.50,
                    lat=30.52,
                    charging_slots=4,
                    wind_mps=15.0,
                    wind_hold_mps=12.0,
                ),
                NestRow(
                    id=ids["closed"],
                    name="Zuoling 3",
                    lon=114.55,
                    lat=30.45,
                    charging_slots=2,
                    status="offline",
                ),
            ]
        )
        await session.flush()
        session.add_all(
            [
                _drone(ids["docked"], ids["nest"]),
                _drone(ids["flying"], ids["nest"]),
                _drone(ids["silent"], ids["nest"]),
                _drone(ids["stale"], ids["nest"]),
                _drone(ids["grounded"], ids["windy"], status="maintenance"),
                _drone(ids["unseen"], ids["windy"]),
            ]
        )
        session.add_all(
            [
                _incident(ids["p1"], 1, "launched", now - timedelta(minutes=3)),
                _incident(ids["p3"], 3, "queued", now - timedelta(hours=2)),
                _incident(ids["done"], 2, "completed", now - timedelta(minutes=5)),
                _incident(ids["future"], 2, "accepted", now + timedelta(hours=1)),
            ]
        )
        await session.flush()
        session.add(
            MissionRow(
                id=ids["mission"],
                incident_id=ids["p1"],
                slot=0,
                drone_id=ids["flying"],
                from_nest_id=ids["nest"],
                eta_seconds=95.0,
                stage="launched",
            )
        )
    await write_points(
        engine,
        [
            _fix(ids["docked"], 1, now - timedelta(minutes=2), 1, 114.40, 30.48),
            # A fraction of a second past a whole second, like most fixes.
            _fix(
                ids["docked"], 2, _past_a_second(now - timedelta(seconds=3)), 1, 114.4001, 30.4801
            ),
            _fix(ids["flying"], 1, now - timedelta(seconds=2), 3, 114.41, 30.475),
            _fix(ids["silent"], 1, now - timedelta(minutes=4), 4, 114.43, 30.49),
            _fix(ids["stale"], 1, now - timedelta(hours=3), 1, 114.40, 30.48),
        ],
    )
    return ids


async def _rows_as_grafana(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    """`sql` run as the role Grafana's datasource holds (SET LOCAL: ends with the transaction)."""
    async with engine.connect() as connection:
        await connection.execute(text(f"SET LOCAL ROLE {ROLE}"))
        result = await connection.execute(text(sql))
        return [dict(row._mapping) for row in result]


def _window() -> TimeRange:
    now = datetime.now(UTC)
    return TimeRange(start=now - timedelta(minutes=15), end=now + timedelta(seconds=5))


async def test_each_layer_returns_its_markers_as_the_read_only_role(
    engine: AsyncEngine, world: dict[str, str]
) -> None:
    sql = {ref: expand(raw, _window()) for ref, raw in _panel_sql().items()}
    rows = {ref: await _rows_as_grafana(engine, query) for ref, query in sql.items()}
    for ref in ENTITY_LAYERS:
        needed = NEEDED[ref]
        assert rows[ref], f"layer {ref} returned nothing"
        missing = needed - set(rows[ref][0])
        assert not missing, f"layer {ref} lacks {missing}"
        for row in rows[ref]:
            assert -90 <= row["latitude"] <= 90 and -180 <= row["longitude"] <= 180, row

    drones = {r["drone_id"]: r for r in rows["A"] if r["drone_id"] in world.values()}
    assert {k: drones[world[k]]["status"] for k in world if world[k] in drones} == {
        "docked": "docked",
        "flying": "on_mission",
        "silent": "link_lost",
        "grounded": "out_of_service",
        "unseen": "no_position",
    }, "a fix older than the dashboard's time range keeps its drone off the map"
    assert drones[world["docked"]]["longitude"] == pytest.approx(114.4001), "the last fix"
    assert drones[world["flying"]]["incident_id"] == world["p1"]
    assert drones[world["flying"]]["mission_stage"] == "launched"

    incidents = {r["incident_id"]: r for r in rows["B"] if r["incident_id"] in world.values()}
    assert set(incidents) == {world["p1"], world["p3"]}, "open, accepted by the range's end"
    assert (incidents[world["p1"]]["priority"], incidents[world["p1"]]["stage"]) == (1, "launched")
    assert incidents[world["p1"]]["missions"] == 1
    assert (incidents[world["p3"]]["stage"], incidents[world["p3"]]["missions"]) == ("queued", 0)

    nests = {r["nest_id"]: r for r in rows["C"] if r["nest_id"] in world.values()}
    assert {k: nests[world[k]]["state"] for k in ("nest", "windy", "closed")} == {
        "nest": "online",
        "windy": "weather_hold",
        "closed": "offline",
    }
    assert nests[world["windy"]]["weather_hold"] is True
    assert nests[world["nest"]]["drones_home"] == 4


async def test_a_fix_within_the_last_second_of_the_range_is_on_the_map(
    engine: AsyncEngine, world: dict[str, str]
) -> None:
    """The epoch macros drop the range's fraction of a second; the fix made then still shows."""
    async with engine.connect() as connection:
        fix_ms: int = (
            await connection.execute(
                text("SELECT fix_time_ms FROM map_drones WHERE drone_id = :id"),
                {"id": world["docked"]},
            )
        ).scalar_one()
    end = datetime.fromtimestamp(fix_ms / 1000, UTC)
    window = TimeRange(start=end - timedelta(minutes=15), end=end)
    rows = await _rows_as_grafana(engine, expand(_panel_sql()[DRONES.ref_id], window))
    assert world["docked"] in {r["drone_id"] for r in rows}, fix_ms


async def test_the_role_reads_the_views_and_no_service_table(engine: AsyncEngine) -> None:
    for view in VIEWS:
        await _rows_as_grafana(engine, f"SELECT * FROM {view} LIMIT 1")
    for table in ("incidents", "track_points", "credentials", "drones", "nests"):
        with pytest.raises(ProgrammingError, match="permission denied"):
            await _rows_as_grafana(engine, f"SELECT 1 FROM {table} LIMIT 1")


async def test_a_drones_last_fix_is_an_index_probe_not_a_scan_of_the_track(
    engine: AsyncEngine, world: dict[str, str]
) -> None:
    async with engine.connect() as connection:
        # Seq scans priced out: the plan shows whether an index can answer the view at all.
        await connection.execute(text("SET enable_seqscan = off"))
        plan: list[str] = list(
            (await connection.execute(text("EXPLAIN SELECT * FROM map_drones"))).scalars()
        )
        text_plan = "\n".join(plan)
        await connection.execute(text("RESET enable_seqscan"))
    assert "ix_track_points_drone_time" in text_plan, text_plan
    assert "Seq Scan on track_points" not in text_plan, text_plan


def test_grafana_macros_expand_as_grafana_does() -> None:
    start = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
    window = TimeRange(start=start, end=start + timedelta(minutes=15, microseconds=500_000))
    assert expand("WHERE $__timeFilter(at)", window) == (
        "WHERE at BETWEEN '2026-11-30T08:00:00Z' AND '2026-11-30T08:15:00.5Z'"
    )
    assert expand("$__timeFrom() $__timeTo()", window) == (
        "'2026-11-30T08:00:00Z' '2026-11-30T08:15:00.5Z'"
    )
    assert expand("$__unixEpochFilter( t )", window) == "t >= 1796025600 AND t <= 1796026500"
    assert expand("$__unixEpochFrom()*1000", window) == "1796025600*1000"
    with pytest.raises(ValueError, match="unknown macro"):
        expand("$__nope(x)", window)


# A strip 12 km by 2 km with a nest 3 km west and one 3 km east of its centre: a drone docked
# at either reaches about 3.8 km within the SLA, so the two together cover the whole strip.
_STRIP_LON, _STRIP_LAT = 114.40, 30.50
_KM_LON, _KM_LAT = 1 / 95.9, 1 / 111.2  # degrees per km at this latitude


def _strip_keeper(settings: Settings, name: str) -> CoverageKeeper:
    reference = load_reference()
    ring = tuple(
        (_STRIP_LON + dx * 6 * _KM_LON, _STRIP_LAT + dy * _KM_LAT)
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1))
    )
    zone = replace(reference.zone, name=name, boundary=ring, area_km2=24.0,
                   centre=(_STRIP_LON, _STRIP_LAT))  # fmt: skip
    return CoverageKeeper(replace(reference, zone=zone), settings)


def _docked_at(nest: NestView, drone_id: str) -> DroneView:
    return DroneView(
        id=drone_id, home_nest=nest.id, capabilities=frozenset({"thermal"}),
        cruise_speed_mps=15.0, climb_rate_mps=5.0, cruise_altitude_m=120.0,
        launch_delay_s=20.0, endurance_s=2400.0, lon=nest.lon, lat=nest.lat,
        battery_pct=100.0, link_ok=True, mode=1,
    )  # fmt: skip


async def _holes_on_the_map(engine: AsyncEngine, zone: str) -> list[dict[str, Any]]:
    """The holes layer's rows of this zone (the panel shows every zone's)."""
    sql = f"SELECT * FROM ({expand(_panel_sql()[HOLES.ref_id], _window())}) AS layer"
    return await _rows_as_grafana(engine, f"{sql} WHERE zone = '{zone}'")


async def test_the_holes_layer_shows_the_cells_an_offline_nest_leaves_uncovered(
    engine: AsyncEngine, settings: Settings
) -> None:
    zone = f"strip-{uuid.uuid4().hex[:6]}"
    keeper = _strip_keeper(settings, zone)
    west = NestView(f"{zone}-west", _STRIP_LON - 3 * _KM_LON, _STRIP_LAT)
    east = NestView(f"{zone}-east", _STRIP_LON + 3 * _KM_LON, _STRIP_LAT)
    strip = keeper.grid.projection.to_lon_lat(0.0, 0.0)
    core = DispatchCore(settings=core_settings(settings), origin=strip)
    for nest in (west, east):
        core.upsert_nest(nest)
        core.upsert_drone(_docked_at(nest, f"{nest.id}-d1"))
    lock = WriterLock(engine, f"test-holes/{zone}")
    await lock.acquire()
    model = HolesReadModel(sessions=session_factory(engine), writer=lock, keeper=keeper, zone=zone)
    try:
        covered = keeper.snapshot(core)
        assert covered.ratio == 1.0, "both nests' drones cover the strip"
        assert await model.write_if_changed()
        assert await _holes_on_the_map(engine, zone) == []
        assert not await model.write_if_changed(), "the same holes are not written again"

        core.upsert_nest(replace(east, online=False))
        open_ = keeper.snapshot(core)
        assert 0 < open_.covered_cells < open_.cells
        assert await model.write_if_changed()
        holes = await _holes_on_the_map(engine, zone)
        assert len(holes) == open_.cells - open_.covered_cells
        assert NEEDED[HOLES.ref_id] <= set(holes[0])
        assert {r["coverage"] for r in holes} == {"hole"}
        assert {r["cell_m"] for r in holes} == {settings.coverage_cell_m}
        # Only the east nest's side is open: no hole within the west drone's reach.
        assert min(r["longitude"] for r in holes) > west.lon + 3.0 * _KM_LON
        assert max(r["longitude"] for r in holes) <= _STRIP_LON + 6 * _KM_LON

        core.upsert_nest(east)
        keeper.snapshot(core)
        assert await model.write_if_changed()
        assert await _holes_on_the_map(engine, zone) == [], "covered again: the holes are gone"

        # A worker that is no longer the writer writes nothing: the fence stops it.
        core.upsert_nest(replace(east, online=False))
        keeper.snapshot(core)
        await lock.release()
        with pytest.raises(WriterLockLost):
            await model.write_if_changed()
        assert await _holes_on_the_map(engine, zone) == []
    finally:
        await lock.release()
