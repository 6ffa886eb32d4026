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


def path_length_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Length of the flown path; the seam where no-fly detours plug in (straight for now)."""
    return haversine_m(lon1, lat1, lon2, lat2)


def eta_seconds(drone: DroneView, incident: IncidentRequest) -> float:
    """Launch delay and climb when docked, then cruise to the scene."""
    assert drone.lon is not None and drone.lat is not None
    cruise = path_length_m(drone.lon, drone.lat, incident.lon, incident.lat)
    if drone.airborne:
        return cruise / drone.cruise_speed_mps
    climb = drone.cruise_altitude_m / drone.climb_rate_mps
    return drone.launch_delay_s + climb + cruise / drone.cruise_speed_mps


def estimate(
    drone: DroneView,
    incident: IncidentRequest,
    nests: dict[str, NestView],
    *,
    reserve_pct: float,
) -> Estimate:
    """Feasible when the battery covers trip, time on scene and return, with a reserve."""
    if not drone.has_position:
        return Estimate(drone.id, float("inf"), 0.0, False, "no position")
    nest = nests.get(drone.home_nest)
    if not drone.airborne and nest is not None and (not nest.online or nest.weather_hold):
        return Estimate(drone.id, float("inf"), 0.0, False, "nest on weather hold or offline")
    eta = eta_seconds(drone, incident)
    back = 0.0
    if nest is not None:
        back = path_length_m(incident.lon, incident.lat, nest.lon, nest.lat)
        back = back / drone.cruise_speed_mps + drone.cruise_altitude_m / drone.climb_rate_mps
    flight_s = eta + incident.on_scene_seconds + back
    battery_after = drone.battery_pct - 100.0 * flight_s / drone.endurance_s
    if battery_after < reserve_pct:
        return Estimate(drone.id, eta, battery_after, False, "battery does not cover the trip")
    return Estimate(drone.id, eta, battery_after, True)
