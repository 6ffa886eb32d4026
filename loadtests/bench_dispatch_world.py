"""The dispatch benchmark's world: the reference zone's no-fly zones, a seeded fleet of any
size housed at the reference nests, a dispatch core loaded with it, and seeded incidents."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from airgrid.geo import point_in_polygon
from airgrid.nofly import NoFlyZone
from airgrid.reference import DroneSpec, ReferenceData
from airgrid.v1 import incident_pb2, telemetry_pb2
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import DroneView, NestView

CAPABILITY_SETS = (("thermal",), ("visual",), ("zoom",), ())
NO_FLY_KINDS = ("no-fly", "temporary")


def _no_fly(reference: ReferenceData) -> list[NoFlyZone]:
    return [
        NoFlyZone(g.id, g.ring)
        for g in reference.geofences
        if g.kind in NO_FLY_KINDS  # time windows are ignored: the bench flies around all
    ]


def random_scene(reference: ReferenceData, rng: random.Random) -> tuple[float, float]:
    """A point in the zone and outside every no-fly polygon, as the API would accept."""
    lons = [p[0] for p in reference.zone.boundary]
    lats = [p[1] for p in reference.zone.boundary]
    zones = _no_fly(reference)
    while True:
        lon, lat = rng.uniform(min(lons), max(lons)), rng.uniform(min(lats), max(lats))
        if point_in_polygon(lon, lat, reference.zone.boundary) and not any(
            point_in_polygon(lon, lat, z.ring) for z in zones
        ):
            return lon, lat


@dataclass(frozen=True)
class BenchDrone:
    spec: DroneSpec
    id: str
    lon: float
    lat: float
    airborne: bool


def fleet(reference: ReferenceData, size: int, rng: random.Random) -> list[BenchDrone]:
    """The reference drones docked at home; beyond 186, clones spread over the nests, a
    fifth of them airborne somewhere in the zone."""
    nests = {n.id: n for n in reference.nests}
    drones = [
        BenchDrone(d, d.id, nests[d.home_nest].lon, nests[d.home_nest].lat, False)
        for d in reference.drones[:size]
    ]
    while len(drones) < size:
        spec = reference.drones[len(drones) % len(reference.drones)]
        nest = rng.choice(reference.nests)
        if rng.random() < 0.2:
            lon, lat = random_scene(reference, rng)
            airborne = True
        else:
            lon, lat, airborne = nest.lon, nest.lat, False
        spec = DroneSpec(**{**spec.__dict__, "home_nest": nest.id})
        drones.append(BenchDrone(spec, f"bench-dr-{len(drones):05d}", lon, lat, airborne))
    return drones


def drone_view(drone: BenchDrone) -> DroneView:
    s = drone.spec
    return DroneView(
        id=drone.id, home_nest=s.home_nest, capabilities=frozenset(s.capabilities),
        cruise_speed_mps=s.cruise_speed_mps, climb_rate_mps=s.climb_rate_mps,
        cruise_altitude_m=s.cruise_altitude_m, launch_delay_s=s.launch_delay_s,
        endurance_s=s.endurance_s, lon=drone.lon, lat=drone.lat, battery_pct=95.0,
        airborne=drone.airborne, link_ok=True,
        mode=telemetry_pb2.FLIGHT_MODE_CRUISING if drone.airborne
        else telemetry_pb2.FLIGHT_MODE_DOCKED,
    )  # fmt: skip


def build_core(reference: ReferenceData, drones: list[BenchDrone], at_ms: int) -> DispatchCore:
    core = DispatchCore(origin=reference.zone.centre)
    for zone in _no_fly(reference):
        core.upsert_zone(zone)
    for n in reference.nests:
        core.upsert_nest(NestView(n.id, n.lon, n.lat, wind_hold_mps=n.wind_hold_mps))
    for drone in drones:
        core.upsert_drone(drone_view(drone), at_ms)
    return core


def incident_bytes(reference: ReferenceData, rng: random.Random, n: int, at_ms: int) -> bytes:
    """An accepted incident as the worker consumes it from airgrid.incidents."""
    lon, lat = random_scene(reference, rng)
    types = reference.incident_types
    return incident_pb2.IncidentEvent(
        accepted=incident_pb2.Incident(
            id=f"bench-inc-{n:07d}", department="fire", type=types[n % len(types)].code,
            priority=1 + n % 4, lon=lon, lat=lat,
            required_capabilities=CAPABILITY_SETS[n % len(CAPABILITY_SETS)], drones_needed=1,
            on_scene_seconds=600, accepted_time_ms=at_ms,
        )
    ).SerializeToString()  # fmt: skip


def decide(core: DispatchCore, record: bytes, at_ms: int) -> list[Any]:
    """What the worker does between consuming a record and having a decision: decode it,
    build the core's request and run the core (search, feasibility, detours)."""
    from services.dispatch.core_feed import request_of

    incident = incident_pb2.IncidentEvent.FromString(record).accepted
    return core.accept(request_of(incident), at_ms)
