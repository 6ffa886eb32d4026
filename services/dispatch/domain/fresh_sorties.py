"""Freshness-driven sorties: which overdue cells a nest's patrol flies over, and in what order.

The core receives the freshness view as plain data (FreshnessView): for each cell that an
active inspection plan holds, the time its revisit interval counts from and the interval.
A cell's weight at now is (now - reference) / interval, the largest over the plans holding
it; a cell never seen weighs NEVER_SEEN_WEIGHT. Only cells of weight above 1 (overdue:
past their deadline) are ever flown to.

The route is greedy by weight over distance: from the nest, the next cell is the one with
the largest weight / (1 km + distance from where the drone is), ties to the lesser cell
index, among those the drone can still reach and fly home from within its range; the sortie
stops when no further cell fits or it holds MAX_SORTIE_CELLS. Pure and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

XY = tuple[float, float]

NEVER_SEEN = -1
"""reference_ms of a cell nobody has seen and no window opening bounds."""
NEVER_SEEN_WEIGHT = 1e6
"""A never-seen cell's weight: above any real lateness, finite so the ratio still ranks by
distance among such cells."""
MAX_SORTIE_CELLS = 40
"""Cells per sortie at most; bounds the planner's work and a sortie's waypoint list."""
CANDIDATES_PER_NEST = 200
"""The heaviest overdue cells within reach of a nest that the greedy walk chooses among."""
_DISTANCE_UNIT_M = 1000.0


@dataclass(frozen=True)
class DueCell:
    """One active plan's claim on one cell: when its interval counts from, and how long."""

    cell: int
    lon: float
    lat: float
    reference_ms: int
    """The later of the cell's last sighting and the opening of the plan's current window;
    NEVER_SEEN when neither."""
    interval_s: float


@dataclass(frozen=True)
class FreshnessView:
    """What dispatch knows of inspection freshness, as plain data for the pure core."""

    cells: tuple[DueCell, ...] = ()
    planned: bool = False
    """True once inspection plans are known: patrols then follow freshness alone (nothing
    overdue, no sortie); before, the lawn-mower routes."""


def cell_weight(reference_ms: int, interval_s: float, now_ms: int) -> float:
    """How far past its interval a cell is: (now - reference) / interval; above 1 is overdue."""
    if reference_ms == NEVER_SEEN:
        return NEVER_SEEN_WEIGHT
    return (now_ms - reference_ms) / (interval_s * 1000.0)


def overdue_weights(view: FreshnessView, now_ms: int) -> dict[int, tuple[float, float, float]]:
    """Per overdue cell: (weight, lon, lat), the weight the largest over the plans holding it;
    cells of weight 1 or less (still fresh) are left out."""
    found: dict[int, tuple[float, float, float]] = {}
    for due in view.cells:
        weight = cell_weight(due.reference_ms, due.interval_s, now_ms)
        if weight <= 1.0:
            continue
        held = found.get(due.cell)
        if held is None or weight > held[0]:
            found[due.cell] = (weight, due.lon, due.lat)
    return found


def loop_m(home: XY, points: Iterable[XY]) -> float:
    """Length of the closed route home, the points in order, home."""
    route = [home, *points, home]
    return sum(math.dist(route[i], route[i + 1]) for i in range(len(route) - 1))


def plan_sortie(
    home: XY,
    cells: Mapping[int, tuple[float, XY]],
    range_m: float,
) -> list[int]:
    """The cells one sortie from home flies over, in order; its loop is at most range_m.

    cells: overdue cell -> (weight, xy). Greedy by weight / (1 km + distance); see the module
    docstring. Empty when not even the nearest candidate fits the range.
    """
    if range_m <= 0 or not cells:
        return []
    reachable = [
        (cell, weight, xy)
        for cell, (weight, xy) in cells.items()
        if 2.0 * math.dist(home, xy) <= range_m
    ]
    reachable.sort(key=lambda c: (-c[1], c[0]))
    candidates = reachable[:CANDIDATES_PER_NEST]
    route: list[int] = []
    here, flown = home, 0.0
    while candidates and len(route) < MAX_SORTIE_CELLS:
        best: tuple[float, int] | None = None
        best_i = -1
        for i, (cell, weight, xy) in enumerate(candidates):
            leg = math.dist(here, xy)
            if flown + leg + math.dist(xy, home) > range_m:
                continue
            key = (-weight / (_DISTANCE_UNIT_M + leg), cell)
            if best is None or key < best:
                best, best_i = key, i
        if best is None:
            break
        cell, _, xy = candidates.pop(best_i)
        flown += math.dist(here, xy)
        here = xy
        route.append(cell)
    return route
