"""Coverage: the share of the zone's area that available drones reach within the SLA.

The zone is cut into square cells (250 m by default) once; their centres are kept as a
numpy array in projected metres, so a coverage pass is one vectorized distance test per
drone. A drone reaches a cell when launch delay, climb and straight-line cruise fit in the
SLA and its battery covers the trip out and back with the reserve. No-fly detours are not
counted here (the dispatch core counts them per incident), so coverage is a slight upper
bound near no-fly zones. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from airgrid.geo import LocalProjection, grid_inside
from services.dispatch.domain.eta import launch_overhead_s
from services.dispatch.domain.model import DroneView, NestView

Ring = Sequence[Sequence[float]]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Time on scene assumed when a drone's battery bounds its reach (the demo incidents' hold).
TYPICAL_ON_SCENE_S = 120.0


@dataclass(frozen=True)
class Reacher:
    """A drone that could take off for a scene now, and how far it gets within the SLA."""

    drone_id: str
    x: float
    y: float
    reach_m: float


def reach_m(
    drone: DroneView,
    nests: Mapping[str, NestView],
    *,
    sla_seconds: float,
    reserve_pct: float,
    on_scene_s: float = TYPICAL_ON_SCENE_S,
) -> float:
    """Metres the drone covers toward a scene within the SLA; 0 when it cannot fly now."""
    if not (drone.active and drone.link_ok and not drone.faults and drone.has_position):
        return 0.0
    if drone.cruise_speed_mps <= 0 or drone.climb_rate_mps <= 0 or drone.endurance_s <= 0:
        return 0.0
    if not drone.airborne:
        home = nests.get(drone.home_nest)
        if home is not None and (not home.online or home.weather_hold):
            return 0.0
    overhead = launch_overhead_s(drone)
    sla_cruise_s = sla_seconds - overhead
    # Out and back at cruise speed, plus climb, time on scene and the reserve.
    usable_s = (drone.battery_pct - reserve_pct) / 100.0 * drone.endurance_s
    battery_cruise_s = (usable_s - overhead - on_scene_s) / 2.0
    cruise_s = min(sla_cruise_s, battery_cruise_s)
    return max(0.0, cruise_s) * drone.cruise_speed_mps


@dataclass(frozen=True)
class CoverageSnapshot:
    ratio: float
    cells: int
    covered_cells: int
    cell_m: float
    reachers: int
    counts: IntArray  # per cell: how many available drones reach it

    @property
    def area_km2(self) -> float:
        return self.cells * self.cell_m * self.cell_m / 1e6

    @property
    def covered_km2(self) -> float:
        return self.covered_cells * self.cell_m * self.cell_m / 1e6

    def uncovered(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.counts == 0)]


class CoverageGrid:
    """The zone's cells; `snapshot` says which of them the given drones reach."""

    def __init__(self, boundary: Ring, projection: LocalProjection, cell_m: float = 250.0):
        if cell_m <= 0:
            raise ValueError("cell_m must be positive")
        self.cell_m = cell_m
        self.projection = projection
        centres = grid_inside(boundary, cell_m, projection)
        if not centres:
            raise ValueError("the zone boundary holds no grid cell; is it a valid ring?")
        self.xy: FloatArray = np.asarray(centres, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def counts(self, reachers: Iterable[Reacher]) -> IntArray:
        """For every cell, how many of the reachers get there within the SLA."""
        counts: IntArray = np.zeros(len(self), dtype=np.int64)
        for r in reachers:
            counts += self.reached_by(r.x, r.y, r.reach_m)
        return counts

    def reached_by(self, x: float, y: float, reach: float) -> IntArray:
        """1 for each cell whose centre lies within reach of (x, y), else 0."""
        if reach <= 0:
            return np.zeros(len(self), dtype=np.int64)
        d2 = (self.xy[:, 0] - x) ** 2 + (self.xy[:, 1] - y) ** 2
        return (d2 <= reach * reach).astype(np.int64)

    def snapshot(self, reachers: Sequence[Reacher]) -> CoverageSnapshot:
        counts = self.counts(reachers)
        covered = int(np.count_nonzero(counts))
        return CoverageSnapshot(
            ratio=covered / len(self),
            cells=len(self),
            covered_cells=covered,
            cell_m=self.cell_m,
            reachers=sum(1 for r in reachers if r.reach_m > 0),
            counts=counts,
        )

    def cell_ring(self, index: int) -> list[list[float]]:
        """The cell's square as a closed GeoJSON ring of [lon, lat]."""
        x, y = (float(v) for v in self.xy[index])
        h = self.cell_m / 2
        corners = [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h), (x - h, y - h)]
        return [[round(c, 6) for c in self.projection.to_lon_lat(*p)] for p in corners]


def reachers_of(
    drones: Iterable[DroneView],
    nests: Mapping[str, NestView],
    projection: LocalProjection,
    *,
    sla_seconds: float,
    reserve_pct: float,
) -> list[Reacher]:
    """The drones that could fly now, positioned in the grid's projection, by id."""
    found: list[Reacher] = []
    for drone in sorted(drones, key=lambda d: d.id):
        reach = reach_m(drone, nests, sla_seconds=sla_seconds, reserve_pct=reserve_pct)
        if reach <= 0 or drone.lon is None or drone.lat is None:
            continue
        x, y = projection.to_xy(drone.lon, drone.lat)
        found.append(Reacher(drone.id, x, y, reach))
    return found
