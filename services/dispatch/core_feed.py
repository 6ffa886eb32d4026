"""What the dispatch worker feeds its core: records and rows made core inputs, the core
built as the worker builds it, and the order things are fed in."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from airgrid.config import Settings
from airgrid.geo import LocalProjection
from airgrid.reference import ReferenceData
from airgrid.v1 import drone_state_pb2, incident_pb2, registry_pb2, telemetry_pb2
from services.dispatch.domain.core import CoreSettings, DispatchCore
from services.dispatch.domain.model import Decision, DroneView, IncidentRequest, NestView
from services.dispatch.domain.nofly import NoFlyZone
from services.dispatch.domain.patrols import patrol_routes
from services.dispatch.models import IncidentRow


def request_of(incident: incident_pb2.Incident) -> IncidentRequest:
    return IncidentRequest(
        id=incident.id,
        priority=incident.priority,
        lon=incident.lon,
        lat=incident.lat,
        required_capabilities=frozenset(incident.required_capabilities),
        drones_needed=incident.drones_needed,
        on_scene_seconds=incident.on_scene_seconds,
        accepted_ms=incident.accepted_time_ms,
        type=incident.type,
        department=incident.department,
    )


def request_of_row(row: IncidentRow) -> IncidentRequest:
    return IncidentRequest(
        id=row.id,
        priority=row.priority,
        lon=row.lon,
        lat=row.lat,
        required_capabilities=frozenset(row.required_capabilities),
        drones_needed=row.drones_needed,
        on_scene_seconds=row.on_scene_seconds,
        accepted_ms=int(row.accepted_at.timestamp() * 1000),
        type=row.type,
        department=row.department,
        patrol_route=row.patrol_route or "",
    )


def drone_view(spec: registry_pb2.Drone, state: drone_state_pb2.DroneState | None) -> DroneView:
    airborne = state is not None and state.flight_mode not in (
        telemetry_pb2.FLIGHT_MODE_DOCKED,
        telemetry_pb2.FLIGHT_MODE_UNSPECIFIED,
    )
    return DroneView(
        id=spec.id,
        home_nest=spec.home_nest,
        capabilities=frozenset(spec.capabilities),
        cruise_speed_mps=spec.cruise_speed_mps,
        climb_rate_mps=spec.climb_rate_mps,
        cruise_altitude_m=spec.cruise_altitude_m,
        launch_delay_s=spec.launch_delay_s,
        endurance_s=spec.endurance_s,
        active=spec.status == "active",
        lon=state.lon if state is not None else None,
        lat=state.lat if state is not None else None,
        battery_pct=state.battery_pct if state is not None else 0.0,
        airborne=airborne,
        alt_m=state.alt_m if state is not None and airborne else None,
        link_ok=state.link_ok if state is not None else False,
        faults=tuple(state.faults) if state is not None else (),
        mode=state.flight_mode if state is not None else 0,
        reported_mission=state.mission_id if state is not None else "",
    )


def nest_view(nest: registry_pb2.Nest) -> NestView:
    return NestView(
        id=nest.id,
        lon=nest.lon,
        lat=nest.lat,
        online=nest.status == "online",
        wind_mps=nest.wind_mps,
        wind_hold_mps=nest.wind_hold_mps,
    )


def zone_of(fence: registry_pb2.Geofence) -> NoFlyZone | None:
    """The no-fly polygon of a registry geofence; altitude limits are flown under."""
    if fence.kind not in ("no-fly", "temporary") or len(fence.ring_lon) < 3:
        return None
    ring = tuple(zip(fence.ring_lon, fence.ring_lat, strict=False))
    return NoFlyZone(fence.id, ring, fence.active_from_ms, fence.active_until_ms)


def core_settings(settings: Settings) -> CoreSettings:
    return CoreSettings(
        reserve_pct=settings.battery_reserve_pct,
        sla_seconds=settings.sla_seconds,
        detour_margin_m=settings.detour_margin_m,
        duplicate_radius_m=settings.duplicate_radius_m,
        duplicate_window_s=settings.duplicate_window_s,
        preempt_max_priority=settings.preempt_max_priority,
        patrol_keep_docked=settings.patrol_keep_docked,
        patrol_interval_s=settings.patrol_interval_s,
        relay_from_s=settings.relay_from_s,
        relay_min_on_scene_s=settings.relay_min_on_scene_s,
        relay_lead_s=settings.relay_lead_s,
        relay_alert_s=settings.relay_alert_s,
    )


def new_core(reference: ReferenceData, settings: Settings) -> DispatchCore:
    """An empty core as the worker builds it: its settings, the zone, the patrol routes."""
    core = DispatchCore(
        settings=core_settings(settings),
        origin=reference.zone.centre,
        area=reference.zone.boundary,
    )
    core.patrol_budget = 0  # until the coverage keeper's first budget
    if settings.patrol_enabled:
        projection = LocalProjection(*reference.zone.centre)
        nests = [(n.id, n.lon, n.lat) for n in reference.nests]
        core.set_patrol_routes(
            patrol_routes(
                reference.zone.boundary, nests, projection, spacing_m=settings.patrol_spacing_m
            )
        )
    return core


def feed_world(
    core: DispatchCore,
    *,
    zones: Iterable[NoFlyZone],
    nests: Iterable[NestView],
    specs: Mapping[str, registry_pb2.Drone],
    states: Mapping[str, drone_state_pb2.DroneState],
) -> list[Decision]:
    """Feed a new core the world: no-fly zones first (every estimate detours around them),
    then nests, then each drone with its latest state, by id. Feeding drones may already
    assign waiting incidents: those decisions are returned, to be stored like any other."""
    decisions: list[Decision] = []
    for zone in zones:
        decisions += core.upsert_zone(zone)
    for nest in nests:
        decisions += core.upsert_nest(nest)
    for drone_id in sorted(specs):
        decisions += core.upsert_drone(drone_view(specs[drone_id], states.get(drone_id)))
    return decisions


def tick(core: DispatchCore, now: int, *, idle_drone_moved: bool) -> list[Decision]:
    """A clock tick's decisions: SLA alerts and patrols, then the queue re-tried when an idle
    drone moved since the last tick. The core re-tries its queue when a drone's availability
    changes, not when an idle drone only moves or its battery drifts (an airborne idle drone
    flying into reach of a waiting incident); the clock does that, at most once a tick and
    only after such a change. With nothing waiting the drain finds nothing to try."""
    decisions = core.tick(now)
    if idle_drone_moved:
        decisions += core.drain_queue()
    return decisions


def now_ms() -> int:
    """The wall clock, as the core's time input."""
    return int(time.time() * 1000)
