"""Routine inspection routes: a lawn-mower sweep of the zone, split per nest into sorties."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.geo import LocalProjection, grid_inside

XY = tuple[float, float]


@dataclass(frozen=True)
class PatrolRoute:
    """One sortie from a nest over some cells of the zone and back; waypoints are lon/lat."""

    id: str
    nest_id: str
    waypoints: tuple[tuple[float, float], ...]
    length_m: float


def patrol_routes(
    boundary: Sequence[Sequence[float]],
    nests: Sequence[tuple[str, float, float]],
    projection: LocalProjection,
    *,
    spacing_m: float = 1000.0,
    max_route_m: float = 15000.0,
) -> list[PatrolRoute]:
    """Routes that together visit every spacing_m cell of the zone, each within max_route_m.

    A drone seeing spacing_m / 2 to either side of its track covers each cell it visits, so
    the routes together cover the zone. Cells go to the nearest nest; each nest sweeps its
    cells row by row, alternating direction, and cuts the sweep into sorties that fit.
    """
    if not nests:
        return []
    cells = grid_inside(boundary, spacing_m, projection)
    homes = [(nest_id, projection.to_xy(lon, lat)) for nest_id, lon, lat in nests]
    by_nest: dict[str, list[XY]] = {nest_id: [] for nest_id, _ in homes}
    for cell in cells:
        nearest = min(homes, key=lambda h: (math.dist(h[1], cell), h[0]))
        by_nest[nearest[0]].append(cell)
    routes: list[PatrolRoute] = []
    for nest_id, home in sorted(homes):
        sweep = _lawn_mower(by_nest[nest_id], spacing_m)
        for n, chunk in enumerate(_sorties(home, sweep, max_route_m)):
            waypoints = tuple(projection.to_lon_lat(*p) for p in chunk)
            routes.append(PatrolRoute(f"{nest_id}/r{n}", nest_id, waypoints, _loop_m(home, chunk)))
    return routes


def _lawn_mower(cells: list[XY], spacing_m: float) -> list[XY]:
    rows: dict[int, list[XY]] = {}
    for cell in cells:
        rows.setdefault(round(cell[1] / spacing_m), []).append(cell)
    sweep: list[XY] = []
    for i, row in enumerate(sorted(rows)):
        sweep.extend(sorted(rows[row], reverse=bool(i % 2)))
    return sweep


def _loop_m(home: XY, chunk: list[XY]) -> float:
    points = [home, *chunk, home]
    return sum(math.dist(points[i], points[i + 1]) for i in range(len(points) - 1))


def _sorties(home: XY, sweep: list[XY], max_route_m: float) -> list[list[XY]]:
    sorties: list[list[XY]] = []
    current: list[XY] = []
    for cell in sweep:
        if current and _loop_m(home, [*current, cell]) > max_route_m:
            sorties.append(current)
            current = []
        current.append(cell)
    if current:
        sorties.append(current)
    return sorties
