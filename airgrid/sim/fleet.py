"""The simulated fleet: every drone of the reference zone, stepped together, and its telemetry.

Reports are due at the nominal rates of SPEC §7 (5 Hz airborne, 0.5 Hz docked) and at once
when a drone changes flight mode, so the dispatch core sees launches and arrivals promptly.
Docked drones' first reports are staggered over one interval, so a fleet of 186 does not
report in a single tick. No I/O and no clock: `now_ms` is an input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from airgrid.reference import ReferenceData
from airgrid.sim.physics import SimDrone, apply_command, step
from airgrid.v1 import command_pb2, telemetry_pb2

log = logging.getLogger("airgrid.sim")


@dataclass(frozen=True)
class ReportRates:
    """Telemetry rates per drone, in reports per second."""

    airborne_hz: float = 5.0
    docked_hz: float = 0.5

    def interval_ms(self, airborne: bool) -> int:
        hz = self.airborne_hz if airborne else self.docked_hz
        return max(1, round(1000.0 / hz)) if hz > 0 else 2**62


class Fleet:
    """All simulated drones, keyed by drone id, each docked at its home nest to begin with."""

    def __init__(
        self,
        reference: ReferenceData,
        *,
        start_ms: int,
        seq_base: int = 0,
        rates: ReportRates | None = None,
    ) -> None:
        self.rates = rates or ReportRates()
        self.nests: dict[str, tuple[float, float]] = {n.id: (n.lon, n.lat) for n in reference.nests}
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
        docked_interval = self.rates.interval_ms(airborne=False)
        count = max(1, len(self.drones))
        self._next_report_ms: dict[str, int] = {
            drone_id: start_ms + (i * docked_interval) // count
            for i, drone_id in enumerate(self.drones)
        }
        self._reported_mode: dict[str, int] = {i: d.mode for i, d in self.drones.items()}

    def __iter__(self) -> Iterator[SimDrone]:
        return iter(self.drones.values())

    def __len__(self) -> int:
        return len(self.drones)

    @property
    def airborne(self) -> int:
        return sum(1 for d in self.drones.values() if d.airborne)

    def apply(self, command: command_pb2.DroneCommand) -> bool:
        """Route a command to its drone; False for an unknown drone or a command out of place."""
        drone = self.drones.get(command.drone_id)
        if drone is None:
            return False
        return apply_command(drone, command, nests=self.nests)

    def tick(self, now_ms: int, dt_s: float) -> list[telemetry_pb2.Telemetry]:
        """Step every drone by dt_s and return the telemetry records due at now_ms."""
        due: list[telemetry_pb2.Telemetry] = []
        for drone_id, drone in self.drones.items():
            step(drone, dt_s)
            mode_changed = drone.mode != self._reported_mode[drone_id]
            if not mode_changed and now_ms < self._next_report_ms[drone_id]:
                continue
            drone.seq += 1
            due.append(telemetry_of(drone, drone_id, now_ms))
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
