"""The fleet's state when the twin starts: every drone docked and full, or mid-operation.

`docked`: the conservative start of the SLA reports: nothing is in the air, every battery is
full, so the first arrival pays the whole launch delay and climb (about 44 s).

`mid-operation`: a city whose air grid was already running when we start watching. The
incidents of the last WARM_UP_S seconds (the same profile, hours and hot spots as the run's
load, drawn with a random of their own so the run's incidents do not change) are flown
through the twin's own physics: each by the fullest drone of the nearest nest that can fly it
(launch, climb, cruise out, on scene, back, land), the docked ones charging on the dock's
curve between sorties. What that leaves at the start is the fleet's state: drones on their
way home at cruise altitude (about the arrival rate times the way home, Little's law), and
docked drones part-charged after their sorties. Sorties still on their way out or on scene at
the start are left out (their drone stays docked): their incidents would be open, and the
dispatch service of this run cannot know them. The earlier missions are closed, so drones
heading home report no mission: dispatch sees them as idle drones in the air, which it may
send to a new incident with no launch delay; the others land and charge. Simplifications:
every drone is taken to carry what the incident needs, and a drone heading home is not
reused for a new incident during the warm-up (dispatch would, so slightly fewer sorties fly
from the docks here than in the service).

Pure and seeded: the same seed, profile, hour and zone give the same start.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from airgrid.geo import bearing_deg, haversine_m
from airgrid.sim.faults import Weather
from airgrid.sim.physics import (
    DOCKED,
    LANDING,
    RETURNING,
    SimDrone,
    apply_command,
    charged,
    step,
)
from airgrid.v1 import command_pb2

DOCKED_START = "docked"
MID_OPERATION = "mid-operation"
START_STATES = (DOCKED_START, MID_OPERATION)

# How much of the city's past is flown before the start: long enough for a drone to fly a
# sortie and charge back (a sortie takes ~17 % of a battery; the dock puts 2.2 % a minute).
WARM_UP_S = 1800.0
# A sortie is flown only by a drone that comes home with this much charge left, as the
# dispatch core's feasibility check keeps its 20 % reserve.
RESERVE_PCT = 20.0
# Nests tried, nearest first, for a drone that can fly an earlier incident.
NESTS_TRIED = 6
# Seconds per physics step of the warm-up (the physics follows phase changes within a step).
STEP_S = 1.0
# A sortie not docked after this long never comes home (a drone spec with no speed).
MAX_SORTIE_S = 4 * 3600.0

# Where an earlier incident happened, drawn with the random given (the load's hot spots).
ScenePoint = Callable[[random.Random], tuple[float, float]]


@dataclass(frozen=True)
class PastLoad:
    """The load of the minutes before the start: its rate by offset (negative seconds) and
    where its incidents happen."""

    rate_at: Callable[[float], float]  # incidents per second at an offset from the start
    scene_point: ScenePoint
    on_scene_s: float
    # Where a drone may be at the start: inside the zone, outside every no-fly zone.
    allowed: Callable[[float, float], bool] = lambda lon, lat: True


@dataclass(frozen=True)
class Sortie:
    """One earlier incident flown during the warm-up, and what it left at the start."""

    drone_id: str
    at_s: float  # when it was posted, seconds before the start (negative)
    scene: tuple[float, float]
    airborne_at_start: bool


class _Dock:
    """A docked drone between sorties, charging from when it landed. Its charge is asked for
    at times that never go back, so it is integrated onward from the last answer."""

    def __init__(self, drone: SimDrone, since_s: float) -> None:
        self.drone = drone
        self._at_s = since_s
        self._pct = drone.battery_pct

    def charge_at(self, at_s: float) -> float:
        if at_s > self._at_s:
            self._pct = charged(self._pct, at_s - self._at_s)
            self._at_s = at_s
        return self._pct


def mid_operation(
    drones: Mapping[str, SimDrone],
    past: PastLoad,
    *,
    weather: Weather,
    seed: int,
    warm_up_s: float = WARM_UP_S,
) -> list[Sortie]:
    """Put `drones` (docked and full, as Fleet makes them) in the state that the last
    warm_up_s seconds of load leave them in; returns the sorties flown. Drones are changed in
    place; a drone whose last sortie is still heading home at the start keeps flying it."""
    rng = random.Random(f"mid-operation-{seed}")
    order = sorted(drones)
    # Nests and the drones docked at each (at its home nest, by id).
    homes: dict[str, tuple[float, float]] = {}
    by_nest: dict[str, list[str]] = {}
    for drone_id in order:
        drone = drones[drone_id]
        homes[drone.home_nest_id] = (drone.home_lon, drone.home_lat)
        by_nest.setdefault(drone.home_nest_id, []).append(drone_id)
    docks = {drone_id: _Dock(drones[drone_id], -warm_up_s) for drone_id in order}
    free_at: dict[str, float] = dict.fromkeys(order, -warm_up_s)  # back on its dock by then
    flying: dict[str, SimDrone] = {}  # drones still in the air at the start, as they are then
    sorties: list[Sortie] = []
    for at_s in _arrivals(past.rate_at, rng, warm_up_s):
        scene = past.scene_point(rng)
        nests = sorted(homes, key=lambda n: (haversine_m(*homes[n], *scene), n))
        flown = _first_feasible(
            nests[:NESTS_TRIED], by_nest, docks, free_at, scene, past.on_scene_s, weather, at_s
        )
        if flown is None:
            continue  # no drone near enough could fly it: an incident the city missed
        if flown.at_start is None:
            docks[flown.drone_id] = _Dock(flown.landed, flown.docked_s)
            free_at[flown.drone_id] = flown.docked_s
        elif flown.at_start.mode not in (RETURNING, LANDING):
            continue  # still out or on scene at the start: left out, the drone stays docked
        elif not past.allowed(flown.at_start.lon, flown.at_start.lat):
            continue  # straight legs (no detours replayed) would start it out of bounds
        else:
            flying[flown.drone_id] = flown.at_start
            free_at[flown.drone_id] = math.inf
        sorties.append(Sortie(flown.drone_id, round(at_s, 3), scene, flown.at_start is not None))
    for drone_id in order:
        target = drones[drone_id]
        if drone_id in flying:
            _take_state(target, flying[drone_id])
        else:
            target.battery_pct = docks[drone_id].charge_at(0.0)
    return sorties


def _arrivals(
    rate_at: Callable[[float], float], rng: random.Random, warm_up_s: float
) -> list[float]:
    """Poisson arrival times in [-warm_up_s, 0) with the rate rate_at(t), by thinning."""
    peak = max((rate_at(-warm_up_s + i * 60.0) for i in range(int(warm_up_s // 60) + 1)), default=0)
    peak *= 1.1  # the rate is piecewise linear by hour; a margin keeps thinning exact
    if peak <= 0:
        return []
    times: list[float] = []
    t = -warm_up_s
    while True:
        t += rng.expovariate(peak)
        if t >= 0:
            return times
        if rng.random() * peak <= rate_at(t):
            times.append(t)


@dataclass
class _Flown:
    """A sortie flown to its end: the drone as it was at the start if it was still out then,
    and as it docked (when, in seconds from the start)."""

    drone_id: str
    at_start: SimDrone | None
    landed: SimDrone
    docked_s: float


def _first_feasible(
    nests: list[str],
    by_nest: dict[str, list[str]],
    docks: dict[str, _Dock],
    free_at: dict[str, float],
    scene: tuple[float, float],
    on_scene_s: float,
    weather: Weather,
    at_s: float,
) -> _Flown | None:
    """The sortie of the fullest docked drone (then the lowest id) of the nearest nest whose
    drone, flown through the physics, comes home with RESERVE_PCT left."""
    for nest_id in nests:
        ready = [d for d in by_nest[nest_id] if free_at[d] <= at_s]
        if not ready:
            continue
        best = min(ready, key=lambda d: (-docks[d].charge_at(at_s), d))
        drone = copy.deepcopy(docks[best].drone)
        drone.battery_pct = docks[best].charge_at(at_s)
        flown = _fly_sortie(best, drone, scene, on_scene_s, weather, at_s)
        if flown.landed.battery_pct >= RESERVE_PCT:
            return flown
    return None


def _fly_sortie(
    drone_id: str,
    drone: SimDrone,
    scene: tuple[float, float],
    on_scene_s: float,
    weather: Weather,
    at_s: float,
) -> _Flown:
    """Fly launch, climb, out, on scene, back and land from at_s until the drone docks."""
    command = command_pb2.DroneCommand(
        kind=command_pb2.COMMAND_KIND_LAUNCH,
        target_lon=scene[0],
        target_lat=scene[1],
        hold_seconds=round(on_scene_s),
    )
    apply_command(drone, command)
    drone.wind_mps, drone.wind_from_deg = weather.wind_mps, weather.from_deg
    now = at_s
    at_start: SimDrone | None = None
    while drone.mode != DOCKED:
        if now - at_s > MAX_SORTIE_S:
            drone.battery_pct = 0.0  # never home: not a sortie anyone would fly
            break
        dt = min(STEP_S, -now) if now < 0.0 else STEP_S
        step(drone, dt)
        now += dt
        if at_start is None and now >= 0.0 and drone.mode != DOCKED:
            at_start = copy.deepcopy(drone)
    return _Flown(drone_id, at_start, drone, now)


def _take_state(target: SimDrone, flown: SimDrone) -> None:
    """The start state of a drone heading home; its earlier mission is closed."""
    target.lon, target.lat = flown.lon, flown.lat
    target.alt_m = flown.alt_m
    target.battery_pct = flown.battery_pct
    target.mode = flown.mode
    target.ground_speed_mps = flown.ground_speed_mps
    target.vertical_speed_mps = flown.vertical_speed_mps
    target.heading_deg = (
        bearing_deg(flown.lon, flown.lat, flown.home_lon, flown.home_lat)
        if flown.mode == RETURNING
        else flown.heading_deg
    )
    target.cruise_alt_m = flown.cruise_alt_m
    target.mission_id = ""
    target.target = None
    target.path = []
    target.hold_remaining_s = None
    target.phase_timer_s = 0.0
