"""One simulated drone's flight and battery: a pure state machine, time is an input.

DOCKED (charging) → LAUNCH → TAKING_OFF (launch delay, then climb) → CRUISING along the path
to the scene → HOVERING for the hold time → RETURNING to the home nest → LANDING → DOCKED.
No clock, no I/O and no randomness here, so a run is replayable and fast to test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from airgrid.geo import bearing_deg, destination_point, haversine_m
from airgrid.reference import DroneSpec
from airgrid.v1 import command_pb2
from airgrid.v1.telemetry_pb2 import FlightMode

DOCKED = FlightMode.FLIGHT_MODE_DOCKED
TAKING_OFF = FlightMode.FLIGHT_MODE_TAKING_OFF
CRUISING = FlightMode.FLIGHT_MODE_CRUISING
HOVERING = FlightMode.FLIGHT_MODE_HOVERING
RETURNING = FlightMode.FLIGHT_MODE_RETURNING
LANDING = FlightMode.FLIGHT_MODE_LANDING

ARRIVAL_RADIUS_M = 15.0
# The autopilot's failsafe: below this charge an outbound or loitering drone heads home.
CRITICAL_BATTERY_PCT = 10.0
# A dock's charging curve, after DJI Dock 2 (20 -> 90 % in about 32 min): 70 % in 1,920 s at
# constant current, then constant voltage, the rate tapering toward 100 %.
CHARGE_PCT_PER_S = 70.0 / 1920.0
CHARGE_TAPER_FROM_PCT = 90.0
CHARGE_MIN_PCT_PER_S = 0.01
# Extra power drawn per m/s of wind, and the slowest ground speed a headwind leaves.
WIND_DRAIN_PER_MPS = 0.02
MIN_GROUND_SPEED_SHARE = 0.3
# A battery fault drains this many times faster (cell imbalance, a failing pack).
BATTERY_FAULT_DRAIN_FACTOR = 4.0
BATTERY_FAULT = "battery_fault"
CLIMB_DRAIN_FACTOR = 1.3
_OUTBOUND = (TAKING_OFF, CRUISING, HOVERING)
# Phase changes inside one step are followed through; this bounds the work per step.
_MAX_PHASES_PER_STEP = 8


@dataclass
class SimDrone:
    """A drone's simulated state; `step` and `apply_command` are the only things that move it."""

    spec: DroneSpec
    home_nest_id: str
    home_lon: float
    home_lat: float
    lon: float
    lat: float
    alt_m: float = 0.0
    battery_pct: float = 100.0
    mode: int = DOCKED
    mission_id: str = ""
    target: tuple[float, float] | None = None
    # Waypoints still ahead of the target (detours around no-fly zones).
    path: list[tuple[float, float]] = field(default_factory=list)
    cruise_alt_m: float = 0.0
    hold_seconds: float = 0.0
    # Seconds left on scene; None while holding until told otherwise (HOLD without a time).
    hold_remaining_s: float | None = None
    # Seconds left of the launch delay, before the climb starts.
    phase_timer_s: float = 0.0
    ground_speed_mps: float = 0.0
    vertical_speed_mps: float = 0.0
    heading_deg: float = 0.0
    wind_mps: float = 0.0
    # Direction the wind blows from, degrees clockwise from north (meteorological).
    wind_from_deg: float = 0.0
    faults: list[str] = field(default_factory=list)
    seq: int = 0

    @classmethod
    def docked_at(
        cls, spec: DroneSpec, nest_id: str, lon: float, lat: float, *, battery_pct: float = 100.0
    ) -> SimDrone:
        return cls(
            spec=spec,
            home_nest_id=nest_id,
            home_lon=lon,
            home_lat=lat,
            lon=lon,
            lat=lat,
            battery_pct=battery_pct,
            cruise_alt_m=spec.cruise_altitude_m,
        )

    @property
    def airborne(self) -> bool:
        """Out of the nest: anything but DOCKED (the launch delay counts, it is a mission)."""
        return self.mode != DOCKED

    @property
    def drain_pct_per_s(self) -> float:
        return 100.0 / self.spec.endurance_s if self.spec.endurance_s > 0 else 0.0


def flight_mode_name(mode: int) -> str:
    """The JSON name of a flight mode (`cruising`), as POST /v1/telemetry takes it."""
    try:
        return str(FlightMode.Name(mode)).removeprefix("FLIGHT_MODE_").lower()
    except ValueError:
        return "unspecified"


def step(drone: SimDrone, dt_s: float) -> None:
    """Advance the drone by dt_s seconds, following phase changes within the step."""
    remaining = max(0.0, dt_s)
    for _ in range(_MAX_PHASES_PER_STEP):
        if remaining <= 1e-9:
            break
        remaining -= _advance(drone, remaining)
        if drone.battery_pct <= CRITICAL_BATTERY_PCT and drone.mode in _OUTBOUND:
            _failsafe_return(drone)


def _failsafe_return(drone: SimDrone) -> None:
    drone.target = None
    drone.path.clear()
    drone.hold_remaining_s = None
    drone.phase_timer_s = 0.0
    drone.mode = RETURNING


def _advance(drone: SimDrone, dt: float) -> float:
    """Advance within the current phase; returns the seconds used (less when the phase ends)."""
    if drone.mode == DOCKED:
        drone.battery_pct = charged(drone.battery_pct, dt)
        _still(drone)
        return dt
    if drone.mode == TAKING_OFF:
        return _take_off(drone, dt)
    if drone.mode == CRUISING:
        return _cruise(drone, dt)
    if drone.mode == HOVERING:
        return _hover(drone, dt)
    if drone.mode == RETURNING:
        return _return(drone, dt)
    if drone.mode == LANDING:
        return _land(drone, dt)
    # An unknown mode is treated as docked, so a bad value never wedges the drone in the air.
    drone.mode = DOCKED
    return 0.0


def charge_rate_pct_per_s(battery_pct: float) -> float:
    """The nest's charging curve: constant current, then a taper above CHARGE_TAPER_FROM_PCT."""
    if battery_pct < CHARGE_TAPER_FROM_PCT:
        return CHARGE_PCT_PER_S
    share_left = (100.0 - battery_pct) / (100.0 - CHARGE_TAPER_FROM_PCT)
    return max(CHARGE_MIN_PCT_PER_S, CHARGE_PCT_PER_S * share_left)


def charged(battery_pct: float, seconds: float) -> float:
    """The charge after `seconds` docked, integrated in steps of at most one second."""
    left = max(0.0, seconds)
    pct = battery_pct
    while left > 1e-9 and pct < 100.0:
        dt = min(1.0, left)
        pct = min(100.0, pct + charge_rate_pct_per_s(pct) * dt)
        left -= dt
    return pct


def ground_speed_mps(
    cruise_mps: float, heading_deg: float, wind_mps: float, wind_from: float
) -> float:
    """Ground speed along the heading: the air speed plus the tailwind component, never below
    MIN_GROUND_SPEED_SHARE of the air speed (the autopilot pushes harder into a headwind)."""
    if wind_mps <= 0.0:
        return cruise_mps
    # Wind blowing from wind_from pushes toward wind_from + 180.
    tail = wind_mps * math.cos(math.radians(heading_deg - (wind_from + 180.0)))
    return max(MIN_GROUND_SPEED_SHARE * cruise_mps, cruise_mps + tail)


def _take_off(drone: SimDrone, dt: float) -> float:
    if drone.phase_timer_s > 0.0:
        used = min(dt, drone.phase_timer_s)
        drone.phase_timer_s -= used
        _drain(drone, used)
        _still(drone)
        return used
    climb = drone.spec.climb_rate_mps
    to_go = drone.cruise_alt_m - drone.alt_m
    if to_go <= 0.0 or climb <= 0.0:
        drone.alt_m = max(drone.alt_m, drone.cruise_alt_m)
        _leave_climb(drone)
        return 0.0
    used = min(dt, to_go / climb)
    drone.alt_m = min(drone.cruise_alt_m, drone.alt_m + climb * used)
    drone.vertical_speed_mps = climb
    drone.ground_speed_mps = 0.0
    _drain(drone, used, CLIMB_DRAIN_FACTOR)
    if drone.alt_m >= drone.cruise_alt_m - 1e-6:
        drone.alt_m = drone.cruise_alt_m
        _leave_climb(drone)
    return used


def _leave_climb(drone: SimDrone) -> None:
    drone.vertical_speed_mps = 0.0
    if drone.target is None:
        drone.mode = RETURNING
    else:
        drone.mode = CRUISING


def _cruise(drone: SimDrone, dt: float) -> float:
    if drone.target is None:
        drone.mode = RETURNING
        return 0.0
    tlon, tlat = drone.target
    if not drone.path and haversine_m(drone.lon, drone.lat, tlon, tlat) <= ARRIVAL_RADIUS_M:
        _arrive_on_scene(drone)
        return 0.0
    goal = drone.path[0] if drone.path else drone.target
    used, arrived = _fly_toward(drone, goal, dt)
    _drain(drone, used)
    if arrived:
        if drone.path:
            drone.path.pop(0)
        else:
            _arrive_on_scene(drone)
    return used


def _arrive_on_scene(drone: SimDrone) -> None:
    drone.mode = HOVERING
    # No hold time means loiter until the next command, as an autopilot does after a goto.
    drone.hold_remaining_s = drone.hold_seconds if drone.hold_seconds > 0 else None
    _still(drone)


def _hover(drone: SimDrone, dt: float) -> float:
    _still(drone)
    if drone.hold_remaining_s is None:
        _drain(drone, dt)
        return dt
    used = min(dt, max(0.0, drone.hold_remaining_s))
    drone.hold_remaining_s -= used
    _drain(drone, used)
    if drone.hold_remaining_s <= 1e-9:
        drone.hold_remaining_s = None
        drone.mode = RETURNING
    return used


def _return(drone: SimDrone, dt: float) -> float:
    used, arrived = _fly_toward(drone, (drone.home_lon, drone.home_lat), dt)
    _drain(drone, used)
    if arrived:
        drone.mode = LANDING
        drone.ground_speed_mps = 0.0
    return used


def _land(drone: SimDrone, dt: float) -> float:
    rate = drone.spec.climb_rate_mps
    if drone.alt_m <= 0.0 or rate <= 0.0:
        _dock(drone)
        return 0.0
    used = min(dt, drone.alt_m / rate)
    drone.alt_m = max(0.0, drone.alt_m - rate * used)
    drone.vertical_speed_mps = -rate
    drone.ground_speed_mps = 0.0
    _drain(drone, used)
    if drone.alt_m <= 1e-6:
        _dock(drone)
    return used


def _dock(drone: SimDrone) -> None:
    drone.mode = DOCKED
    drone.alt_m = 0.0
    drone.lon, drone.lat = drone.home_lon, drone.home_lat
    drone.mission_id = ""
    drone.target = None
    drone.path.clear()
    drone.hold_remaining_s = None
    drone.phase_timer_s = 0.0
    _still(drone)


def _fly_toward(drone: SimDrone, goal: tuple[float, float], dt: float) -> tuple[float, bool]:
    """Great-circle move toward goal at cruise speed; returns (seconds used, arrived)."""
    glon, glat = goal
    distance = haversine_m(drone.lon, drone.lat, glon, glat)
    drone.vertical_speed_mps = 0.0
    if distance <= 1e-3:
        drone.lon, drone.lat = glon, glat
        return 0.0, True
    drone.heading_deg = _heading(bearing_deg(drone.lon, drone.lat, glon, glat))
    speed = drone.spec.cruise_speed_mps
    if speed > 0.0:
        speed = ground_speed_mps(speed, drone.heading_deg, drone.wind_mps, drone.wind_from_deg)
    if speed <= 0.0:
        drone.ground_speed_mps = 0.0
        return dt, False
    drone.ground_speed_mps = speed
    if speed * dt >= distance:
        drone.lon, drone.lat = glon, glat
        return distance / speed, True
    drone.lon, drone.lat = destination_point(drone.lon, drone.lat, drone.heading_deg, speed * dt)
    return dt, False


def _heading(degrees: float) -> float:
    heading = degrees % 360.0
    return 0.0 if heading >= 360.0 else heading


def _still(drone: SimDrone) -> None:
    drone.ground_speed_mps = 0.0
    drone.vertical_speed_mps = 0.0


def _drain(drone: SimDrone, seconds: float, factor: float = 1.0) -> None:
    factor *= 1.0 + WIND_DRAIN_PER_MPS * max(0.0, drone.wind_mps)
    if BATTERY_FAULT in drone.faults:
        factor *= BATTERY_FAULT_DRAIN_FACTOR
    drone.battery_pct = max(0.0, drone.battery_pct - drone.drain_pct_per_s * factor * seconds)


# -- commands -----------------------------------------------------------------------------------


def apply_command(
    drone: SimDrone,
    command: command_pb2.DroneCommand,
    *,
    nests: Mapping[str, tuple[float, float]] | None = None,
) -> bool:
    """Obey a command the way an autopilot would; False when it does not apply in this mode.

    Feasibility (battery, weather) is the dispatch core's call: a docked drone obeys LAUNCH
    whatever its charge.
    """
    kind = command.kind
    if kind == command_pb2.COMMAND_KIND_LAUNCH:
        if _relocates(drone, command, nests or {}):
            return _go_home(drone, command, nests or {})
        return _launch(drone, command)
    if kind == command_pb2.COMMAND_KIND_GOTO:
        if not drone.airborne:
            return False
        _retarget(drone, command)
        return True
    if kind == command_pb2.COMMAND_KIND_HOLD:
        return _hold(drone, command)
    if kind == command_pb2.COMMAND_KIND_RETURN:
        return _go_home(drone, command, nests or {})
    return False


def _relocates(
    drone: SimDrone, command: command_pb2.DroneCommand, nests: Mapping[str, tuple[float, float]]
) -> bool:
    """A LAUNCH without a mission naming another nest moves a docked drone there to land."""
    return (
        not drone.airborne
        and not command.mission_id
        and command.nest_id != drone.home_nest_id
        and command.nest_id in nests
    )


def _launch(drone: SimDrone, command: command_pb2.DroneCommand) -> bool:
    if drone.airborne:
        # An airborne drone given a new mission (re-dispatch, preemption) flies straight to it.
        _retarget(drone, command)
        return True
    drone.mode = TAKING_OFF
    drone.phase_timer_s = max(0.0, drone.spec.launch_delay_s)
    drone.alt_m = 0.0
    _set_mission(drone, command)
    return True


def _retarget(drone: SimDrone, command: command_pb2.DroneCommand) -> None:
    _set_mission(drone, command)
    drone.hold_remaining_s = None
    if drone.mode == TAKING_OFF and drone.phase_timer_s > 0.0:
        return  # still on the pad: the launch carries on toward the new target
    drone.phase_timer_s = 0.0
    drone.mode = TAKING_OFF if drone.alt_m < drone.cruise_alt_m - 1.0 else CRUISING


def _set_mission(drone: SimDrone, command: command_pb2.DroneCommand) -> None:
    if command.mission_id:
        drone.mission_id = command.mission_id
    drone.target = (command.target_lon, command.target_lat)
    drone.path = list(zip(command.path_lon, command.path_lat, strict=False))
    drone.cruise_alt_m = command.target_alt_m or drone.spec.cruise_altitude_m
    drone.hold_seconds = float(max(0, command.hold_seconds))


def _hold(drone: SimDrone, command: command_pb2.DroneCommand) -> bool:
    if not drone.airborne:
        return False
    drone.mode = HOVERING
    drone.phase_timer_s = 0.0
    drone.hold_remaining_s = float(command.hold_seconds) if command.hold_seconds > 0 else None
    _still(drone)
    return True


def _go_home(
    drone: SimDrone, command: command_pb2.DroneCommand, nests: Mapping[str, tuple[float, float]]
) -> bool:
    new_home = nests.get(command.nest_id) if command.nest_id != drone.home_nest_id else None
    if new_home is not None:
        drone.home_nest_id = command.nest_id
        drone.home_lon, drone.home_lat = new_home
    drone.target = None
    drone.path.clear()
    drone.hold_remaining_s = None
    if not drone.airborne:
        if new_home is None:
            return False
        # A docked drone sent to another nest is repositioned: it launches and flies there.
        drone.mode = TAKING_OFF
        drone.phase_timer_s = max(0.0, drone.spec.launch_delay_s)
        drone.cruise_alt_m = drone.spec.cruise_altitude_m
        drone.mission_id = command.mission_id
        return True
    if drone.mode == TAKING_OFF and drone.alt_m <= 0.0 and new_home is None:
        _dock(drone)  # never left the pad: the launch is simply called off
        return True
    if drone.mode != LANDING:
        drone.mode = RETURNING
        drone.phase_timer_s = 0.0
    return True
