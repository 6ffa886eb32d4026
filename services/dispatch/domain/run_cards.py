"""Run cards: idle docked drones grouped at their nests, and per response cell the nests in
order of how near they can be to any scene in that cell.

Dispatch centres keep a response plan per response zone: which stations to call first for a
scene there. Here the plan is a card per square response cell of cell_m: every nest with a
lower bound on its distance to any point of the cell, nearest first. It serves both the
search for docked drones and the nearest online nest for the return leg. A card depends only
on the nests' positions, so the cards are built in one vectorized pass and kept until a nest
is added or moved.

Idle docked drones sit in groups: one group per nest and per identical launch (position,
home nest and flight spec). Drones of a group reach a scene with the same time, so the best
of a group is its first member in (most battery, id) order that carries the capabilities,
and when that one cannot cover the trip on its battery neither can any member after it.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from services.dispatch.domain.model import DroneView
from services.dispatch.domain.selection import most_battery_first

XY = tuple[float, float]

# A docked drone farther than this from its home nest is searched live, not by the cards.
SITE_RADIUS_M = 250.0

GroupKey = tuple[float, float, str, float, float, float, float, float]


def group_key(drone: DroneView) -> GroupKey:
    """Everything the time to scene and the battery feasibility depend on, but the battery."""
    assert drone.lon is not None and drone.lat is not None
    return (
        drone.lon,
        drone.lat,
        drone.home_nest,
        drone.launch_delay_s,
        drone.climb_rate_mps,
        drone.cruise_altitude_m,
        drone.cruise_speed_mps,
        drone.endurance_s,
    )


@dataclass
class DockedGroup:
    """Idle docked drones with the same launch; members ordered by (most battery, id)."""

    key: GroupKey
    xy: XY
    overhead_s: float  # launch delay and climb
    speed_mps: float
    members: dict[str, DroneView] = field(default_factory=dict)
    _ordered: list[DroneView] | None = None

    def ordered(self) -> list[DroneView]:
        if self._ordered is None:
            self._ordered = sorted(self.members.values(), key=most_battery_first)
        return self._ordered


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class RunCard:
    """One response cell's plan: (lower bound on the distance from any point of the cell in
    metres, nest id) nearest first, and the nests whose legs to any point of the cell (from
    anywhere within SITE_RADIUS_M of the nest) pass no no-fly zone's bounding box, so they
    are straight lines."""

    nests: tuple[tuple[float, str], ...]
    clear: frozenset[str]


# Cards are built in one pass for the nests' bounding box widened by this much; a scene
# farther out gets its card on first use.
CARD_MARGIN_M = 5000.0
# At most this many cells in the one pass (the reference zone needs about 10,000); nests
# spread wider get each cell's card on first use instead, so memory stays bounded.
MAX_CARD_CELLS = 200_000


class RunCards:
    """Idle docked drones at their nests, and the run card of every response cell."""

    def __init__(self, cell_m: float = 500.0) -> None:
        self.cell_m = cell_m
        self.anchors: dict[str, XY] = {}  # nest id -> position
        self.sites: dict[str, dict[GroupKey, DockedGroup]] = {}
        self.where: dict[str, tuple[str, GroupKey]] = {}  # drone id -> (nest id, group key)
        self.min_overhead_s = math.inf  # least launch overhead of any drone ever docked here
        self.max_speed_mps = 0.0  # fastest drone ever docked here
        self.obstacles: tuple[Box, ...] = ()  # bounding boxes of the active no-fly zones
        self._cards: dict[tuple[int, int], RunCard] = {}
        self._order: dict[tuple[int, int], tuple[tuple[float, str], ...]] | None = None
        self._clear_by_cell: dict[tuple[int, int], frozenset[str]] | None = None
        self._shared: dict[bytes, frozenset[str]] = {}  # the few distinct clear sets
        self._index_nests()

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, drone_id: object) -> bool:
        return drone_id in self.where

    # -- nests ------------------------------------------------------------------------------

    def set_nest(self, nest_id: str, xy: XY) -> bool:
        """A nest's position; the cards are rebuilt (on next use) when it is new or moved."""
        if self.anchors.get(nest_id) == xy:
            return False
        self.anchors[nest_id] = xy
        self._cards = {}
        self._order = None
        self._clear_by_cell = None
        self._shared = {}
        return True

    def set_obstacles(self, boxes: tuple[Box, ...]) -> None:
        """The active no-fly zones' bounding boxes; the clear legs are redone when they
        change."""
        if boxes is not self.obstacles and boxes != self.obstacles:
            self.obstacles = boxes
            self._cards = {}
            self._clear_by_cell = None
            self._shared = {}

    def fits(self, drone: DroneView, xy: XY) -> bool:
        """A docked drone within SITE_RADIUS_M of its known home nest is searched by card."""
        anchor = self.anchors.get(drone.home_nest)
        return (
            not drone.airborne
            and anchor is not None
            and math.dist(anchor, xy) <= SITE_RADIUS_M
            and drone.cruise_speed_mps > 0
            and drone.climb_rate_mps > 0
        )

    # -- drones -----------------------------------------------------------------------------

    def put(self, drone: DroneView, xy: XY) -> None:
        key = group_key(drone)
        self.remove(drone.id)
        groups = self.sites.setdefault(drone.home_nest, {})
        group = groups.get(key)
        if group is None:
            overhead = drone.launch_delay_s + drone.cruise_altitude_m / drone.climb_rate_mps
            group = DockedGroup(key, xy, overhead, drone.cruise_speed_mps)
            groups[key] = group
            self.min_overhead_s = min(self.min_overhead_s, overhead)
            self.max_speed_mps = max(self.max_speed_mps, drone.cruise_speed_mps)
        group.members[drone.id] = drone
        group._ordered = None
        self.where[drone.id] = (drone.home_nest, key)

    def remove(self, drone_id: str) -> None:
        found = self.where.pop(drone_id, None)
        if found is None:
            return
        nest_id, key = found
        groups = self.sites[nest_id]
        group = groups[key]
        del group.members[drone_id]
        group._ordered = None
        if not group.members:
            del groups[key]
            if not groups:
                del self.sites[nest_id]

    # -- cards ------------------------------------------------------------------------------

    def card(self, xy: XY) -> RunCard:
        """The card of the response cell holding xy. The nest order of every cell is built in
        one pass after a nest change (slow: tuples for every cell), which legs are clear in
        one quicker pass after the no-fly zones change; a cell outside the nests' area gets
        its own on first use."""
        cell = (math.floor(xy[0] / self.cell_m), math.floor(xy[1] / self.cell_m))
        found = self._cards.get(cell)
        if found is None:
            if self._order is None:
                self._index_nests()
                self._order = self._nest_order(self._all_cells())
            if self._clear_by_cell is None:
                self._clear_by_cell = self._clear(list(self._order))
            nests = self._order.get(cell)
            if nests is None:
                nests = self._order[cell] = self._nest_order([cell])[cell]
            clear = self._clear_by_cell.get(cell)
            if clear is None:
                clear = self._clear_by_cell[cell] = self._clear([cell])[cell]
            found = self._cards[cell] = RunCard(nests, clear)
        return found

    def _index_nests(self) -> None:
        self._ids = sorted(self.anchors)
        self._nx = np.array([self.anchors[n][0] for n in self._ids], dtype=np.float64)
        self._ny = np.array([self.anchors[n][1] for n in self._ids], dtype=np.float64)
        self._names = np.array(self._ids, dtype=object)

    def card_cells(self) -> int:
        """How many cells the one pass would build for the nests' bounding box."""
        if not self.anchors:
            return 0
        size, margin = self.cell_m, CARD_MARGIN_M
        xs, ys = [a[0] for a in self.anchors.values()], [a[1] for a in self.anchors.values()]
        width = math.floor((max(xs) + margin) / size) - math.floor((min(xs) - margin) / size) + 1
        height = math.floor((max(ys) + margin) / size) - math.floor((min(ys) - margin) / size) + 1
        return width * height

    def _all_cells(self) -> list[tuple[int, int]]:
        if not self.anchors or self.card_cells() > MAX_CARD_CELLS:
            return []
        size, margin = self.cell_m, CARD_MARGIN_M
        i0, i1 = (
            math.floor((v + m) / size)
            for v, m in ((self._nx.min(), -margin), (self._nx.max(), margin))
        )
        j0, j1 = (
            math.floor((v + m) / size)
            for v, m in ((self._ny.min(), -margin), (self._ny.max(), margin))
        )
        return [(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]

    def _nest_order(
        self, cells: list[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[tuple[float, str], ...]]:
        """For cells, in one vectorized pass: the nests by distance from the cell's square."""
        if not cells:
            return {}
        size, nx, ny = self.cell_m, self._nx, self._ny
        x0 = np.array([c[0] for c in cells], dtype=np.float64)[:, None] * size
        y0 = np.array([c[1] for c in cells], dtype=np.float64)[:, None] * size
        dx = np.maximum(np.maximum(x0 - nx, 0.0), nx - (x0 + size))
        dy = np.maximum(np.maximum(y0 - ny, 0.0), ny - (y0 + size))
        distance = np.hypot(dx, dy)
        order = np.argsort(distance, axis=1, kind="stable")
        ranked = np.take_along_axis(distance, order, axis=1).tolist()
        names = self._names[order].tolist()
        return {c: tuple(zip(ranked[k], names[k], strict=True)) for k, c in enumerate(cells)}

    def _clear(self, cells: list[tuple[int, int]]) -> dict[tuple[int, int], frozenset[str]]:
        """For cells, in one vectorized pass: the nests whose legs to the cell (from within
        SITE_RADIUS_M of the nest) stay out of every obstacle's box. Few distinct sets
        occur; each is kept once."""
        if not cells:
            return {}
        size, r, nx, ny = self.cell_m, SITE_RADIUS_M, self._nx, self._ny
        x0 = np.array([c[0] for c in cells], dtype=np.float64)[:, None] * size
        y0 = np.array([c[1] for c in cells], dtype=np.float64)[:, None] * size
        lx, hx = np.minimum(x0, nx - r), np.maximum(x0 + size, nx + r)
        ly, hy = np.minimum(y0, ny - r), np.maximum(y0 + size, ny + r)
        hit = np.zeros((len(cells), len(self._ids)), dtype=bool)
        for bx0, by0, bx1, by1 in self.obstacles:
            hit |= ~((hx < bx0) | (lx > bx1) | (hy < by0) | (ly > by1))
        packed = np.packbits(hit, axis=1)
        found: dict[tuple[int, int], frozenset[str]] = {}
        for k, cell in enumerate(cells):
            key = packed[k].tobytes()
            clear = self._shared.get(key)
            if clear is None:
                clear = self._shared[key] = frozenset(self._names[~hit[k]].tolist())
            found[cell] = clear
        return found
