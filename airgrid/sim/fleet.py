"""The simulated fleet: every drone of the reference zone, stepped together, and its telemetry.

Reports are due at the nominal rates of SPEC §7 (5 Hz airborne, 0.5 Hz docked) and at once
when a drone changes flight mode, so the dispatch core sees launches and arrivals promptly.
Docked drones' first reports are staggered over half a second, so a fleet of 186 does not
report in a single tick and dispatch knows all of it promptly. No I/O and no clock: `now_ms`
is an input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from airgrid.reference import ReferenceData
from airgrid.sim.faults import BATTERY, GUST, LINK_LOSS, NEST_OFFLINE, FaultEvent, Weather
from airgrid.sim.physics import (
    BATTERY_FAULT,
    CRUISING,
    DOCKED,
    HOVERING,
    LANDING,
    RETURNING,
    TAKING_OFF,
    SimDrone,
    apply_command,
    step,
)
from airgrid.v1 import command_pb2, telemetry_pb2

log = logging.getLogger("airgrid.sim")

# The fleet's first reports are spread over this long (then each drone keeps its own phase),
# so dispatch knows every drone within half a second of the start without one burst of 186.
FIRST_REPORT_SPREAD_MS = 500


@dataclass(frozen=True)
class ReportRates:
    """Telemetry rates per drone, in reports per second."""

    airborne_hz: float = 5.0
    docked_hz: float = 0.5

    def interval_ms(self, airborne: bool) -> int:
        hz = self.airborne_hz if airborne else self.docked_hz
        return max(1, round(1000.0 / hz)) if hz > 0 else 2**62


class Fleet:
    """All simulated drones, keyed by drone id, each docked at its home nest to begin with
    (or as `initial_state` leaves them: see `start_state`)."""

    def __init__(
        self,
        reference: ReferenceData,
        *,
        start_ms: int,
        seq_base: int = 0,
        rates: ReportRates | None = None,
        weather: Weather | None = None,
        initial_state: Callable[[dict[str, SimDrone]], object] | None = None,
    ) -> None:
        self.rates = rates or ReportRates()
        self.weather = weather or Weather(0.0, 0.0)
        self.nests: dict[str, tuple[float, float]] = {n.id: (n.lon, n.lat) for n in reference.nests}
        self.wind_hold: dict[str, float] = {n.id: n.wind_hold_mps for n in reference.nests}
        # Active faults: (kind, target) -> until ms; gusts also keep their wind per nest.
        self.faults: dict[tuple[str, str], int] = {}
        self.gusts: dict[str, float] = {}
        self.drones: dict[str, SimDrone] = {}
        for spec in reference.drones:
            home = self.nests.get(spec.home_nest)
            if home is None:
                log.warning(
                    "drone has no known home nest; left out of the simulation",
                    extra={"drone_id": spec.id, "nest_id": spec.home_nest},
                )
                continue
            drone = SimDrone.docked_at(spec, spec.home_nest, *home)
            # A seq base taken from the clock keeps seq increasing across simulator restarts.
            drone.seq = seq_base
            self.drones[spec.id] = drone
        if initial_state is not None:
            initial_state(self.drones)
        spread = min(FIRST_REPORT_SPREAD_MS, self.rates.interval_ms(airborne=False))
        count = max(1, len(self.drones))
        self._next_report_ms: dict[str, int] = {
            drone_id: start_ms + (i * spread) // count for i, drone_id in enumerate(self.drones)
        }
        self._unreported = set(self.drones)
        self._reported_mode: dict[str, int] = {i: d.mode for i, d in self.drones.items()}

    @property
    def all_reported(self) -> bool:
        """Every drone has sent at least one report (dispatch knows the whole fleet)."""
        return not self._unreported

    def __iter__(self) -> Iterator[SimDrone]:
        return iter(self.drones.values())

    def __len__(self) -> int:
        return len(self.drones)

    @property
    def airborne(self) -> int:
        return sum(1 for d in self.drones.values() if d.airborne)

    def by_status(self) -> dict[str, int]:
        """Drones per flight status, for the dashboard."""
        names: dict[int, str] = {
            DOCKED: "docked", TAKING_OFF: "launching", CRUISING: "cruising",
            HOVERING: "on scene", RETURNING: "returning", LANDING: "landing",
        }  # fmt: skip
        counts = dict.fromkeys(names.values(), 0)
        counts["faulty"] = 0
        for drone in self.drones.values():
            counts[names.get(drone.mode, "docked")] += 1
            if drone.faults:
                counts["faulty"] += 1
        return counts

    def nest_down(self, nest_id: str) -> str:
        """Why a nest cannot launch now ("" when it can)."""
        if (NEST_OFFLINE, nest_id) in self.faults:
            return NEST_OFFLINE
        if self.gusts.get(nest_id, 0.0) >= self.wind_hold.get(nest_id, float("inf")):
            return "wind_hold"
        return ""

    def apply(self, command: command_pb2.DroneCommand) -> bool:
        """Route a command to its drone; False for an unknown drone or a command out of place
        (a docked drone cannot launch from a nest that is offline or held by wind)."""
        drone = self.drones.get(command.drone_id)
        if drone is None:
            return False
        if not drone.airborne and self.nest_down(drone.home_nest_id):
            return False
        return apply_command(drone, command, nests=self.nests)

    def inject(self, event: FaultEvent, now_ms: int) -> None:
        """Start a fault; it clears by itself after its duration."""
        self.faults[(event.kind, event.target)] = now_ms + int(event.duration_s * 1000)
        if event.kind == GUST:
            self.gusts[event.target] = event.wind_mps
        log.info(
            "fault injected",
            extra={"kind": event.kind, "target": event.target, "duration_s": event.duration_s},
        )

    def link_lost(self, drone_id: str) -> bool:
        return (LINK_LOSS, drone_id) in self.faults

    def _expire(self, now_ms: int) -> None:
        for key, until in sorted(self.faults.items()):
            if now_ms >= until:
                del self.faults[key]
                if key[0] == GUST:
                    self.gusts.pop(key[1], None)

    def _update_conditions(self, drone: SimDrone) -> None:
        """Wind at the drone (the gust of its nest while docked or near it) and the faults
        its nest gateway reports for it."""
        wind = self.weather.wind_mps
        gust = self.gusts.get(drone.home_nest_id)
        if gust is not None and not drone.airborne:
            wind = gust
        drone.wind_mps = wind
        drone.wind_from_deg = self.weather.from_deg
        faults = []
        if (BATTERY, drone.spec.id) in self.faults:
            faults.append(BATTERY_FAULT)
        if not drone.airborne:
            down = self.nest_down(drone.home_nest_id)
            if down:
                faults.append(down)
        if faults != drone.faults:
            drone.faults = faults

    def tick(self, now_ms: int, dt_s: float) -> list[telemetry_pb2.Telemetry]:
        """Step every drone by dt_s and return the telemetry records due at now_ms (none from
        drones whose link is lost)."""
        due: list[telemetry_pb2.Telemetry] = []
        if self.faults:
            self._expire(now_ms)
        for drone_id, drone in self.drones.items():
            self._update_conditions(drone)
            step(drone, dt_s)
            if self.faults and self.link_lost(drone_id):
                continue
            mode_changed = drone.mode != self._reported_mode[drone_id]
            if not mode_changed and now_ms < self._next_report_ms[drone_id]:
                continue
            drone.seq += 1
            due.append(telemetry_of(drone, drone_id, now_ms))
            self._unreported.discard(drone_id)
            self._reported_mode[drone_id] = drone.mode
            self._next_report_ms[drone_id] = now_ms + self.rates.interval_ms(drone.airborne)
        return due


def telemetry_of(drone: SimDrone, drone_id: str, now_ms: int) -> telemetry_pb2.Telemetry:
    """The record the drone's autopilot would send now."""
    return telemetry_pb2.Telemetry(
        drone_id=drone_id,
        seq=drone.seq,
        event_time_ms=now_ms,
        lon=drone.lon,
        lat=drone.lat,
        alt_m=round(drone.alt_m, 2),
        ground_speed_mps=round(drone.ground_speed_mps, 2),
        vertical_speed_mps=round(drone.vertical_speed_mps, 2),
        heading_deg=round(drone.heading_deg, 1) % 360.0,
        battery_pct=round(min(100.0, max(0.0, drone.battery_pct)), 2),
        flight_mode=drone.mode,  # type: ignore[arg-type]
        nest_id=drone.home_nest_id,
        mission_id=drone.mission_id,
        wind_mps=drone.wind_mps,
        faults=drone.faults,
    )
