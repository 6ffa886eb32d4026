"""Draw the live map panel's data to a PNG: the Geomap layers' own SQL (deploy/map_queries.py),
Grafana's macros expanded as Grafana does, run as the read-only airgrid_grafana role.

    python scripts/render_map.py --database-url postgresql+asyncpg://…/airgrid  # a live stack
    python scripts/render_map.py                                                # demo snapshot

Without --database-url it starts a private PostgreSQL, migrates it, seeds the reference zone
and writes a demo snapshot through the services' models and track store (drones docked at their
nests, some flying to open incidents, one nest held by wind, one offline), and the coverage
holes that snapshot leaves through dispatch's own coverage pass and holes read model, then
draws that. The figure of the README (docs/img/operator-map.png) is made this way.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airgrid.config import Settings  # noqa: E402
from airgrid.db import create_engine, session_factory  # noqa: E402
from airgrid.geo import point_in_polygon  # noqa: E402
from airgrid.migrate import upgrade  # noqa: E402
from airgrid.reference import ReferenceData, load_reference  # noqa: E402
from airgrid.servers.postgres import PrivatePostgres  # noqa: E402
from airgrid.v1 import telemetry_pb2  # noqa: E402
from deploy.map_queries import DRONES, HOLES, INCIDENTS, NESTS, ROLE  # noqa: E402
from deploy.operator_map_dashboard import COLOURS  # noqa: E402
from deploy.sql_macros import TimeRange, expand  # noqa: E402
from services.dispatch.core_feed import core_settings  # noqa: E402
from services.dispatch.coverage import CoverageKeeper  # noqa: E402
from services.dispatch.domain.core import DispatchCore  # noqa: E402
from services.dispatch.domain.model import DroneView, NestView  # noqa: E402
from services.dispatch.holes_read_model import HolesReadModel  # noqa: E402
from services.dispatch.models import IncidentRow, MissionRow  # noqa: E402
from services.dispatch.writer_lock import WriterLock  # noqa: E402
from services.registry.models import DroneRow, NestRow  # noqa: E402
from services.registry.seed import seed_reference  # noqa: E402
from services.telemetry.store import row_of, write_points  # noqa: E402

OFFLINE_NESTS = 4

# Grafana's named colours, as matplotlib draws them.
PALETTE = {
    "green": "#56a64b",
    "blue": "#3274d9",
    "orange": "#ff9830",
    "red": "#e02f44",
    "purple": "#a352cc",
    "yellow": "#f2cc0c",
    "text": "#8e8e8e",
}


async def rows_as_grafana(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        await connection.execute(text(f"SET LOCAL ROLE {ROLE}"))
        return [dict(r._mapping) for r in await connection.execute(text(sql))]


async def demo_snapshot(engine: AsyncEngine, reference: ReferenceData) -> None:
    """A moment of a working day, written through the services' own models and track store."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    await seed_reference(session_factory(engine), reference)
    nests = {n.id: n for n in reference.nests}
    drones = list(reference.drones)
    ring = reference.zone.boundary
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]

    def inside() -> tuple[float, float]:
        while True:
            lon, lat = rng.uniform(min(lons), max(lons)), rng.uniform(min(lats), max(lats))
            if point_in_polygon(lon, lat, ring):
                return lon, lat

    fixes = []
    flying = rng.sample(drones, 9)
    silent = rng.sample([d for d in drones if d not in flying], 3)
    grounded = rng.sample([d for d in drones if d not in flying and d not in silent], 4)
    windy = sorted(nests)[len(nests) // 3]
    # A nest and its nearest neighbours offline (a district's power cut): a hole opens.
    first = nests[sorted(nests)[2 * len(nests) // 3]]
    offline = sorted(
        nests, key=lambda i: math.hypot(nests[i].lon - first.lon, nests[i].lat - first.lat)
    )[:OFFLINE_NESTS]
    async with session_factory(engine)() as session, session.begin():
        await session.execute(update(NestRow).where(NestRow.id == windy).values(wind_mps=14.5))
        await session.execute(
            update(NestRow).where(NestRow.id.in_(offline)).values(status="offline")
        )
        await session.execute(
            update(DroneRow)
            .where(DroneRow.id.in_([d.id for d in grounded]))
            .values(status="maintenance")
        )
        for i in range(13):
            lon, lat = inside()
            incident_id = f"demo-incident-{i:02d}"
            crewed = i < len(flying)
            stage = ("launched", "on_scene", "assigned")[i % 3] if crewed else "queued"
            session.add(
                IncidentRow(
                    id=incident_id,
                    department=rng.choice(("fire", "traffic", "police", "environment")),
                    reported_by="demo",
                    type="fire",
                    priority=1 + i % 4,
                    lon=lon,
                    lat=lat,
                    geometry={"type": "Point", "coordinates": [lon, lat]},
                    required_capabilities=[],
                    drones_needed=1,
                    on_scene_seconds=600,
                    description="",
                    shared_with=[],
                    status=stage,
                    accepted_at=now - timedelta(minutes=rng.uniform(1, 9)),
                )
            )
            if crewed:
                drone = flying[i]
                home = nests[drone.home_nest]
                share = {"assigned": 0.0, "launched": 0.55, "on_scene": 1.0}[stage]
                fixes.append(
                    (drone.id, home.lon + share * (lon - home.lon),
                     home.lat + share * (lat - home.lat), 3, now)
                )  # fmt: skip
                await session.flush()
                session.add(
                    MissionRow(
                        id=f"demo-mission-{i:02d}",
                        incident_id=incident_id,
                        slot=0,
                        drone_id=drone.id,
                        from_nest_id=home.id,
                        eta_seconds=120.0,
                        stage=stage,
                    )
                )
    for drone in drones:
        home = nests[drone.home_nest]
        if drone in silent:
            fixes.append(
                (drone.id, home.lon + 0.01, home.lat + 0.01, 4, now - timedelta(minutes=2))
            )
        elif drone not in flying:
            fixes.append((drone.id, home.lon, home.lat, 1, now - timedelta(seconds=2)))
    records = [
        telemetry_pb2.Telemetry(
            drone_id=drone_id, seq=1, event_time_ms=int(at.timestamp() * 1000), lon=lon,
            lat=lat, alt_m=0.0 if mode == 1 else 110.0, battery_pct=80.0,
            flight_mode=mode,  # type: ignore[arg-type]
        )
        for drone_id, lon, lat, mode, at in fixes
    ]  # fmt: skip
    await write_points(engine, [row_of(record) for record in records])
    docked = [d for d in drones if d not in flying and d not in silent and d not in grounded]
    await write_holes(engine, reference, docked, windy=windy, offline=offline)


async def write_holes(
    engine: AsyncEngine,
    reference: ReferenceData,
    docked: list[Any],
    *,
    windy: str,
    offline: list[str],
) -> None:
    """The holes the demo's docked drones leave, as dispatch's writer computes and stores them."""
    settings = Settings()
    core = DispatchCore(
        settings=core_settings(settings),
        origin=reference.zone.centre,
        area=reference.zone.boundary,
    )
    for n in reference.nests:
        core.upsert_nest(
            NestView(n.id, n.lon, n.lat, online=n.id not in offline,
                     wind_mps=14.5 if n.id == windy else 0.0, wind_hold_mps=n.wind_hold_mps)
        )  # fmt: skip
    for d in docked:
        home = next(n for n in reference.nests if n.id == d.home_nest)
        core.upsert_drone(
            DroneView(
                id=d.id, home_nest=d.home_nest, capabilities=frozenset(d.capabilities),
                cruise_speed_mps=d.cruise_speed_mps, climb_rate_mps=d.climb_rate_mps,
                cruise_altitude_m=d.cruise_altitude_m, launch_delay_s=d.launch_delay_s,
                endurance_s=d.endurance_s, lon=home.lon, lat=home.lat, battery_pct=80.0,
                link_ok=True, mode=1,
            )
        )  # fmt: skip
    keeper = CoverageKeeper(reference, settings)
    keeper.snapshot(core)
    lock = WriterLock(engine, "render-map")
    await lock.acquire()
    try:
        holes = HolesReadModel(
            sessions=session_factory(engine), writer=lock, keeper=keeper,
            zone=reference.zone.name,
        )  # fmt: skip
        await holes.write_if_changed()
    finally:
        await lock.release()


def draw(layers: dict[str, list[dict[str, Any]]], reference: ReferenceData, out: Path) -> None:
    ring = reference.zone.boundary
    fig, ax = plt.subplots(figsize=(9.5, 5.2), dpi=100)
    ax.plot([p[0] for p in ring], [p[1] for p in ring], color="#555555", linewidth=1.0)
    ax.set_aspect(1 / math.cos(math.radians(reference.zone.centre[1])))

    def colour(field: str, value: Any) -> str:
        return PALETTE[COLOURS[field].get(str(value), "text")]

    holes = layers["holes"]
    if holes:
        # Squares of the cell's size, in degrees at the zone's latitude.
        cell_m = holes[0]["cell_m"]
        half_lat = cell_m / 2 / 111_320
        half_lon = half_lat / math.cos(math.radians(reference.zone.centre[1]))
        for r in holes:
            ax.add_patch(
                plt.Rectangle((r["longitude"] - half_lon, r["latitude"] - half_lat),
                              2 * half_lon, 2 * half_lat, linewidth=0,
                              color=colour("coverage", r["coverage"]), alpha=HOLES.opacity)
            )  # fmt: skip
        ax.scatter([], [], marker="s", s=40, color=colour("coverage", "hole"), alpha=HOLES.opacity,
                   label=f"coverage hole ({len(holes)} cells of {cell_m:.0f} m)")  # fmt: skip
    for state in COLOURS["state"]:
        nests = [r for r in layers["nests"] if r["state"] == state]
        if nests:
            ax.scatter([r["longitude"] for r in nests], [r["latitude"] for r in nests],
                       marker="s", s=70, facecolors="none", edgecolors=colour("state", state),
                       linewidths=1.6, label=f"nest {state.replace('_', ' ')}")  # fmt: skip
    for status in COLOURS["status"]:
        drones = [r for r in layers["drones"] if r["status"] == status]
        if drones:
            ax.scatter([r["longitude"] for r in drones], [r["latitude"] for r in drones],
                       s=12, color=colour("status", status),
                       label=f"drone {status.replace('_', ' ')} ({len(drones)})")  # fmt: skip
    for priority in sorted({r["priority"] for r in layers["incidents"]}):
        found = [r for r in layers["incidents"] if r["priority"] == priority]
        ax.scatter([r["longitude"] for r in found], [r["latitude"] for r in found], marker="^",
                   s=110, color=colour("priority", priority), edgecolors="black",
                   linewidths=0.6, label=f"incident P{priority}")  # fmt: skip
        for r in found:
            ax.annotate(r["stage"], (r["longitude"], r["latitude"]), xytext=(6, 4),
                        textcoords="offset points", fontsize=7)  # fmt: skip
    ax.set_title("airgrid — live map: the Geomap layers' SQL, as airgrid_grafana", fontsize=11)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


async def render(database_url: str, out: Path, *, demo: bool) -> None:
    settings = Settings(database_url=database_url)
    reference = load_reference()
    if demo:
        await asyncio.to_thread(upgrade, settings)
    engine = create_engine(settings)
    try:
        if demo:
            await demo_snapshot(engine, reference)
        now = datetime.now(UTC)
        window = TimeRange(start=now - timedelta(minutes=15), end=now)
        layers = {
            name: await rows_as_grafana(engine, expand(layer.sql, window))
            for name, layer in (
                ("holes", HOLES),
                ("drones", DRONES),
                ("incidents", INCIDENTS),
                ("nests", NESTS),
            )
        }
    finally:
        await engine.dispose()
    draw(layers, reference, out)
    counts = ", ".join(f"{len(rows)} {name}" for name, rows in layers.items())
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: {counts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a migrated airgrid PostgreSQL (default: demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/img/operator-map.png")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(render(args.database_url, args.out, demo=False))
        return 0
    with PrivatePostgres(database="airgrid_map") as server:
        asyncio.run(render(server.url, args.out, demo=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
