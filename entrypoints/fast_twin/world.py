"""The zone as the dispatch worker knows it, and the core and coverage keeper built from it.

The registry feed of the live stack (nests, drones, geofences as registry records) is made
here from the reference data directly, through the same conversions the dispatch worker
applies to the records it reads (`drone_view`, `nest_view`, `zone_of`), so the core of the
accelerated twin starts from what the live core would know. A layout file moves, adds or
takes nests out of service; `nests_offline` marks nests offline in the registry and at their
gateways (their docked drones report `nest_offline` and cannot launch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import orjson

from airgrid.config import Settings
from airgrid.freshness import PlanArea
from airgrid.geo import point_in_polygon
from airgrid.reference import DroneSpec, NestSpec, ReferenceData
from airgrid.sim.incidents import NO_FLY_KINDS
from airgrid.v1 import registry_pb2
from services.dispatch.core_feed import feed_world, nest_view, new_core, zone_of
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import Decision
from services.dispatch.patrol_freshness import PatrolFreshness


class LayoutError(ValueError):
    """A layout file that cannot be used; the message names the entry."""


def spec_record(drone: DroneSpec) -> registry_pb2.Drone:
    """The registry record of a reference drone, as the registry seeds and publishes it."""
    return registry_pb2.Drone(
        id=drone.id,
        model=drone.model,
        home_nest=drone.home_nest,
        capabilities=list(drone.capabilities),
        cruise_speed_mps=drone.cruise_speed_mps,
        max_speed_mps=drone.max_speed_mps,
        climb_rate_mps=drone.climb_rate_mps,
        cruise_altitude_m=drone.cruise_altitude_m,
        endurance_s=drone.endurance_s,
        launch_delay_s=drone.launch_delay_s,
        payload_kg=drone.payload_kg,
        status="active",
    )


def nest_record(nest: NestSpec) -> registry_pb2.Nest:
    return registry_pb2.Nest(
        id=nest.id,
        name=nest.name,
        lon=nest.lon,
        lat=nest.lat,
        charging_slots=nest.charging_slots,
        status=nest.status,
        wind_mps=0.0,
        wind_hold_mps=nest.wind_hold_mps,
    )


def _ms(value: str | None) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000) if value else 0


def with_layout(reference: ReferenceData, path: Path) -> ReferenceData:
    """The reference zone with the nests of a layout file, in one of two shapes.

    A JSON list in the shape of the zone's nests.json changes the reference nests: a nest
    listed replaces the reference nest of that id (moved, or given another status); a new id
    adds a nest. Every drone keeps its home nest, which must be in the result.

    An object `{"nests": [...], "drones": [{"id", "home_nest"}, ...]}` is a whole layout:
    its nests replace all of the zone's, and its drones re-home the same fleet (every
    reference drone listed once, no other), within each nest's charging slots.

    Either way every nest must lie inside the zone and outside its no-fly zones."""
    try:
        content = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise LayoutError(f"{path}: not a readable JSON file ({error})") from error
    whole = isinstance(content, dict)
    entries = content.get("nests") if isinstance(content, dict) else content
    if not isinstance(entries, list):
        raise LayoutError(
            f"{path}: expected a JSON list of nests like nests.json, or an object with "
            "'nests' and 'drones'"
        )
    nests = {} if whole else {n.id: n for n in reference.nests}
    no_fly = [g for g in reference.geofences if g.kind in NO_FLY_KINDS]
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise LayoutError(f"{path}: entry {index} is not a nest object with an id")
        base = nests.get(entry["id"])
        try:
            nest = NestSpec(
                id=entry["id"],
                name=str(entry.get("name", base.name if base else entry["id"])),
                lon=float(entry["lon"] if "lon" in entry or base is None else base.lon),
                lat=float(entry["lat"] if "lat" in entry or base is None else base.lat),
                charging_slots=int(entry.get("charging_slots", base.charging_slots if base else 5)),
                status=str(entry.get("status", base.status if base else "online")),
                wind_hold_mps=float(
                    entry.get("wind_hold_mps", base.wind_hold_mps if base else 12.0)
                ),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise LayoutError(f"{path}: nest {entry['id']}: {error}") from error
        if not point_in_polygon(nest.lon, nest.lat, reference.zone.boundary):
            raise LayoutError(f"{path}: nest {nest.id} lies outside the zone boundary")
        for fence in no_fly:
            if point_in_polygon(nest.lon, nest.lat, fence.ring):
                raise LayoutError(f"{path}: nest {nest.id} lies in the no-fly zone {fence.id}")
        nests[nest.id] = nest
    drones = reference.drones
    if isinstance(content, dict):
        drones = _rehomed(reference, content.get("drones"), nests, path)
    missing = sorted({d.home_nest for d in drones} - set(nests))
    if missing:
        raise LayoutError(f"{path}: drones are based at nests the layout lacks: {missing}")
    return replace(reference, nests=tuple(nests[i] for i in sorted(nests)), drones=drones)


def _rehomed(
    reference: ReferenceData, entries: object, nests: dict[str, NestSpec], path: Path
) -> tuple[DroneSpec, ...]:
    """The reference fleet with the home nests of a whole layout's drone list."""
    if not isinstance(entries, list):
        raise LayoutError(f"{path}: a layout object needs 'drones': a list of id and home_nest")
    fleet = {d.id: d for d in reference.drones}
    homes: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("id", "home_nest")
        ):
            raise LayoutError(f"{path}: drone entry {index} needs an id and a home_nest")
        drone_id, home = entry["id"], entry["home_nest"]
        if drone_id not in fleet:
            raise LayoutError(f"{path}: drone {drone_id} is not in the zone's fleet")
        if drone_id in homes:
            raise LayoutError(f"{path}: drone {drone_id} is listed twice")
        if home not in nests:
            raise LayoutError(f"{path}: drone {drone_id}: no nest {home} in the layout")
        homes[drone_id] = home
    left_out = sorted(set(fleet) - set(homes))
    if left_out:
        raise LayoutError(f"{path}: the layout leaves out drones of the fleet: {left_out[:5]}")
    based: dict[str, int] = {}
    for home in homes.values():
        based[home] = based.get(home, 0) + 1
    for nest_id, count in sorted(based.items()):
        if count > nests[nest_id].charging_slots:
            raise LayoutError(
                f"{path}: nest {nest_id} has {nests[nest_id].charging_slots} charging slots "
                f"for {count} drones"
            )
    return tuple(replace(fleet[i], home_nest=homes[i]) for i in sorted(fleet))


def nests_offline(reference: ReferenceData, offline: Sequence[str]) -> ReferenceData:
    """The reference zone with these nests' registry status offline."""
    unknown = sorted(set(offline) - {n.id for n in reference.nests})
    if unknown:
        raise LayoutError(f"unknown nests: {', '.join(unknown)}")
    down = set(offline)
    return replace(
        reference,
        nests=tuple(replace(n, status="offline") if n.id in down else n for n in reference.nests),
    )


@dataclass
class DispatchSide:
    """The dispatch worker's state in the twin: its core, its coverage keeper, and the
    registry records of the drones (the spec half of every drone view)."""

    core: DispatchCore
    coverage: CoverageKeeper
    specs: dict[str, registry_pb2.Drone]
    freshness: PatrolFreshness | None = None
    """The worker's freshness view for patrols, its plans from the zone data."""


def dispatch_side(
    reference: ReferenceData, settings: Settings
) -> tuple[DispatchSide, list[Decision]]:
    """The core as the worker builds it (settings, zone, patrol routes), fed the registry's
    no-fly zones and nests. Drones reach it with their first state, as in the worker, where
    a drone without a state is held back until the state view has caught up. Returns the
    decisions of the feed (none with nothing waiting)."""
    core = new_core(reference, settings)
    zones = []
    for fence in reference.geofences:
        record = registry_pb2.Geofence(
            id=fence.id,
            name=fence.name,
            kind=fence.kind,
            ring_lon=[p[0] for p in fence.ring],
            ring_lat=[p[1] for p in fence.ring],
            max_altitude_m=fence.max_altitude_m or 0.0,
            active_from_ms=_ms(fence.active_from),
            active_until_ms=_ms(fence.active_until),
        )
        zone = zone_of(record)
        if zone is not None:
            zones.append(zone)
    nests = [nest_view(nest_record(nest)) for nest in reference.nests]
    decisions = feed_world(core, zones=zones, nests=nests, specs={}, states={})
    specs = {d.id: spec_record(d) for d in reference.drones}
    freshness = None
    if settings.patrol_enabled and reference.inspection_plans:
        freshness = PatrolFreshness(reference, settings)
        freshness.use_plans(PlanArea.from_spec(plan) for plan in reference.inspection_plans)
    side = DispatchSide(core, CoverageKeeper(reference, settings), specs, freshness)
    return side, decisions
