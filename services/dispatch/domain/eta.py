"""Time to scene and battery feasibility of one drone for one incident."""

from __future__ import annotations

from dataclasses import dataclass

from airgrid.geo import haversine_m
from services.dispatch.domain.model import DroneView, IncidentRequest, NestView


@dataclass(frozen=True)
class Estimate:
    drone_id: str
    eta_seconds: float
    battery_after_pct: float
    feasible: bool
    reason: str = ""
    # How long the drone can stay on scene: the whole time asked for, or less when it is
    # one link of a relay chain.
    stay_seconds: float = 0.0


def path_length_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Straight-line length; the core passes detour lengths from its DetourPlanner instead."""
    return haversine_m(lon1, lat1, lon2, lat2)


def launch_overhead_s(drone: DroneView) -> float:
    """Launch delay and climb for a docked drone; for one in the air, the climb back to
    cruise altitude (a drone landing or taking off is below it)."""
    if drone.airborne:
        if drone.alt_m is None:
            return 0.0
        return max(0.0, drone.cruise_altitude_m - drone.alt_m) / drone.climb_rate_mps
    return drone.launch_delay_s + drone.cruise_altitude_m / drone.climb_rate_mps


def eta_seconds(
    drone: DroneView, incident: IncidentRequest, *, path_m: float | None = None
) -> float:
    """Launch delay and climb when docked, then cruise along the path to the scene."""
    assert drone.lon is not None and drone.lat is not None
    if path_m is None:
        path_m = path_length_m(drone.lon, drone.lat, incident.lon, incident.lat)
    return launch_overhead_s(drone) + path_m / drone.cruise_speed_mps


def nearest_nest(nests: dict[str, NestView], lon: float, lat: float) -> NestView | None:
    """The nearest online nest to land at (ties by id)."""
    online = [n for n in nests.values() if n.online]
    if not online:
        return None
    return min(online, key=lambda n: (haversine_m(lon, lat, n.lon, n.lat), n.id))


def estimate(
    drone: DroneView,
    incident: IncidentRequest,
    nests: dict[str, NestView],
    *,
    reserve_pct: float,
    path_m: float | None = None,
    back_m: float | None = None,
    min_on_scene_s: float | None = None,
) -> Estimate:
    """Feasible when the battery covers trip, time on scene and the return to the nearest
    nest, with a reserve; a docked drone under a nest's weather hold cannot launch.

    min_on_scene_s (a relay link): enough when the battery covers the trip, at least this
    long on scene and the return with the reserve; the stay is then what the battery allows
    and another drone relieves this one before it must turn home."""
    if not drone.has_position:
        return Estimate(drone.id, float("inf"), 0.0, False, "no position")
    if not incident.required_capabilities <= drone.capabilities:
        return Estimate(drone.id, float("inf"), 0.0, False, "missing a required capability")
    home = nests.get(drone.home_nest)
    if not drone.airborne and home is not None and (not home.online or home.weather_hold):
        return Estimate(drone.id, float("inf"), 0.0, False, "nest on weather hold or offline")
    if path_m == float("inf"):
        return Estimate(drone.id, float("inf"), 0.0, False, "no path around the no-fly zones")
    eta = eta_seconds(drone, incident, path_m=path_m)
    if back_m is None:
        nest = nearest_nest(nests, incident.lon, incident.lat)
        back_m = (
            0.0 if nest is None else path_length_m(incident.lon, incident.lat, nest.lon, nest.lat)
        )
    back = back_m / drone.cruise_speed_mps + drone.cruise_altitude_m / drone.climb_rate_mps
    flight_s = eta + incident.on_scene_seconds + back
    battery_after = drone.battery_pct - 100.0 * flight_s / drone.endurance_s
    if battery_after >= reserve_pct:
        return Estimate(drone.id, eta, battery_after, True, stay_seconds=incident.on_scene_seconds)
    if min_on_scene_s is not None and min_on_scene_s < incident.on_scene_seconds:
        stay = (drone.battery_pct - reserve_pct) / 100.0 * drone.endurance_s - eta - back
        if stay >= min_on_scene_s:
            after = drone.battery_pct - 100.0 * (eta + stay + back) / drone.endurance_s
            return Estimate(drone.id, eta, after, True, stay_seconds=stay)
    return Estimate(drone.id, eta, battery_after, False, "battery does not cover the trip")
