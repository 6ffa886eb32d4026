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
            self._ordered = sorted(self.members.values(), key=lambda d: (-d.battery_pct, d.id))
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
        self._cards: dict[tuple[int, int], RunCard] | None = None

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
        self._cards = None
        return True

    def set_obstacles(self, boxes: tuple[Box, ...]) -> None:
        """The active no-fly zones' bounding boxes; the cards are rebuilt when they change."""
        if boxes is not self.obstacles and boxes != self.obstacles:
            self.obstacles = boxes
            self._cards = None

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
        """The card of the response cell holding xy."""
        cards = self._cards
        if cards is None:
            cards = self._cards = self._build_all()
        cell = (math.floor(xy[0] / self.cell_m), math.floor(xy[1] / self.cell_m))
        found = cards.get(cell)
        if found is None:
            found = cards[cell] = self._build([cell])[cell]
        return found

    def _build_all(self) -> dict[tuple[int, int], RunCard]:
        if not self.anchors:
            return {}
        xs = [p[0] for p in self.anchors.values()]
        ys = [p[1] for p in self.anchors.values()]
        size = self.cell_m
        margin = CARD_MARGIN_M
        i0, i1 = math.floor((min(xs) - margin) / size), math.floor((max(xs) + margin) / size)
        j0, j1 = math.floor((min(ys) - margin) / size), math.floor((max(ys) + margin) / size)
        return self._build([(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)])

    def _build(self, cells: list[tuple[int, int]]) -> dict[tuple[int, int], RunCard]:
        """Cards for cells, in one vectorized pass: nests by distance from the cell's square,
        and which nests' legs to the cell stay clear of every obstacle's box."""
        ids = sorted(self.anchors)
        nx = np.array([self.anchors[n][0] for n in ids])
        ny = np.array([self.anchors[n][1] for n in ids])
        size = self.cell_m
        x0 = np.array([c[0] for c in cells], dtype=np.float64)[:, None] * size
        y0 = np.array([c[1] for c in cells], dtype=np.float64)[:, None] * size
        dx = np.maximum(np.maximum(x0 - nx, 0.0), nx - (x0 + size))
        dy = np.maximum(np.maximum(y0 - ny, 0.0), ny - (y0 + size))
        distance = np.hypot(dx, dy)
        order = np.argsort(distance, axis=1, kind="stable")
        ranked = np.take_along_axis(distance, order, axis=1).tolist()
        names = np.array(ids, dtype=object)[order].tolist()
        # The box holding every leg from near the nest to the cell, against each obstacle's.
        r = SITE_RADIUS_M
        lx, hx = np.minimum(x0, nx - r), np.maximum(x0 + size, nx + r)
        ly, hy = np.minimum(y0, ny - r), np.maximum(y0 + size, ny + r)
        hit = np.zeros(distance.shape, dtype=bool)
        for bx0, by0, bx1, by1 in self.obstacles:
            hit |= ~((hx < bx0) | (lx > bx1) | (hy < by0) | (ly > by1))
        every = np.array(ids, dtype=object)
        return {
            cell: RunCard(
                tuple(zip(ranked[k], names[k], strict=True)),
                frozenset(every[~hit[k]].tolist()),
            )
            for k, cell in enumerate(cells)
        }
