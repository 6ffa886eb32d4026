"""No-fly detours: shortest flyable paths around active no-fly polygons (visibility graph).

Everything works in the metres of one local projection. The graph's nodes are the polygon
vertices pushed outward by a margin; edges join nodes that see each other. It is built once per
set of active polygons; a query first tries the straight leg (bounding boxes, then edges) and
only runs the graph when the leg is blocked.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.geo import LocalProjection, point_in_polygon
from airgrid.nofly import NoFlyZone as NoFlyZone  # also importable from here

XY = tuple[float, float]


@dataclass(frozen=True)
class _Polygon:
    points: tuple[XY, ...]
    box: tuple[float, float, float, float]


class Target:
    """A destination prepared for many queries; the graph distances to it are computed on
    the first query whose straight leg is blocked, then reused."""

    __slots__ = ("_dist", "_next", "planner", "reachable", "xy")

    def __init__(self, planner: DetourPlanner, xy: XY, reachable: bool) -> None:
        self.planner = planner
        self.xy = xy
        self.reachable = reachable
        self._dist: list[float] | None = None
        self._next: list[int] = []

    def node_dist(self) -> list[float]:
        if self._dist is None:
            self._dist, self._next = self.planner.dijkstra_to(self.xy)
        return self._dist

    def node_next(self, node: int) -> int:
        self.node_dist()
        return self._next[node]


def _cross(o: XY, a: XY, b: XY) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _proper_cross(a: XY, b: XY, c: XY, d: XY) -> bool:
    d1, d2 = _cross(a, b, c), _cross(a, b, d)
    d3, d4 = _cross(c, d, a), _cross(c, d, b)
    return ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4))


def _runs_inside(a: XY, b: XY, points: Sequence[XY]) -> bool:
    """Without a proper crossing, the leg can still run inside the polygon between points
    where it only touches the boundary (through vertices, along edges). Between consecutive
    touches the leg is wholly inside or wholly outside, so one midpoint each decides."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    touches = [0.0, 1.0]
    n = len(points)
    for k in range(n):
        c, d = points[k], points[(k + 1) % n]
        ex, ey = d[0] - c[0], d[1] - c[1]
        denominator = dx * ey - dy * ex
        if denominator != 0.0:
            t = ((c[0] - a[0]) * ey - (c[1] - a[1]) * ex) / denominator
            u = ((c[0] - a[0]) * dy - (c[1] - a[1]) * dx) / denominator
            if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
                touches.append(t)
        elif _cross(a, b, c) == 0.0 and (dx or dy):
            # Collinear: where the edge's ends lie along the leg.
            length2 = dx * dx + dy * dy
            for p in (c, d):
                t = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2
                if 0.0 <= t <= 1.0:
                    touches.append(t)
    touches.sort()
    for t0, t1 in itertools.pairwise(touches):
        if t1 - t0 <= 1e-12:
            continue
        t = (t0 + t1) / 2
        if point_in_polygon(a[0] + t * dx, a[1] + t * dy, points):
            return True
    return False


def _distance(a: XY, b: XY) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


class DetourPlanner:
    """Shortest paths around a fixed set of polygons, all in projected metres."""

    def __init__(self, rings_xy: Sequence[Sequence[XY]], *, margin_m: float = 30.0) -> None:
        self.polygons: list[_Polygon] = []
        for ring in rings_xy:
            points = [(float(x), float(y)) for x, y in ring]
            if len(points) > 1 and points[0] == points[-1]:
                points.pop()
            if len(points) < 3:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            self.polygons.append(_Polygon(tuple(points), (min(xs), min(ys), max(xs), max(ys))))
        self.boxes = tuple(polygon.box for polygon in self.polygons)
        self.nodes: list[XY] = []
        for polygon in self.polygons:
            self.nodes.extend(
                n for n in _offset_vertices(polygon.points, margin_m) if self.inside(n) is None
            )
        self.adjacency: list[list[tuple[int, float]]] = [[] for _ in self.nodes]
        for i, a in enumerate(self.nodes):
            for j in range(i + 1, len(self.nodes)):
                b = self.nodes[j]
                if not self.blocked(a, b):
                    d = _distance(a, b)
                    self.adjacency[i].append((j, d))
                    self.adjacency[j].append((i, d))

    # -- geometry ------------------------------------------------------------------------

    def inside(self, p: XY) -> int | None:
        """Index of the polygon containing p, if any."""
        for index, polygon in enumerate(self.polygons):
            x0, y0, x1, y1 = polygon.box
            if (
                x0 <= p[0] <= x1
                and y0 <= p[1] <= y1
                and point_in_polygon(p[0], p[1], polygon.points)
            ):
                return index
        return None

    def blocked(self, a: XY, b: XY, ignore: int | None = None) -> bool:
        """Does the straight leg a→b cross a polygon (other than the one a starts inside)?"""
        lx, hx = (a[0], b[0]) if a[0] <= b[0] else (b[0], a[0])
        ly, hy = (a[1], b[1]) if a[1] <= b[1] else (b[1], a[1])
        for index, polygon in enumerate(self.polygons):
            if index == ignore:
                continue
            x0, y0, x1, y1 = polygon.box
            if hx < x0 or lx > x1 or hy < y0 or ly > y1:
                continue
            points = polygon.points
            n = len(points)
            for k in range(n):
                if _proper_cross(a, b, points[k], points[(k + 1) % n]):
                    return True
            if _runs_inside(a, b, points):
                return True
        return False

    # -- queries -------------------------------------------------------------------------

    def target(self, xy: XY) -> Target:
        """Prepare a destination; unreachable when it lies inside a polygon."""
        return Target(self, xy, self.inside(xy) is None)

    def dijkstra_to(self, xy: XY) -> tuple[list[float], list[int]]:
        """Graph distance from every node to xy, and each node's next hop (-1: straight)."""
        n = len(self.nodes)
        dist = [math.inf] * n
        nxt = [-1] * n
        heap: list[tuple[float, int]] = []
        for i, node in enumerate(self.nodes):
            if not self.blocked(node, xy):
                dist[i] = _distance(node, xy)
                heapq.heappush(heap, (dist[i], i))
        while heap:
            d, i = heapq.heappop(heap)
            if d > dist[i]:
                continue
            for j, w in self.adjacency[i]:
                if d + w < dist[j]:
                    dist[j] = d + w
                    nxt[j] = i
                    heapq.heappush(heap, (dist[j], j))
        return dist, nxt

    def _entry(self, start: XY, target: Target) -> tuple[float, int]:
        """Length of the shortest path and the first graph node (-1: straight, inf: none)."""
        if not target.reachable:
            return math.inf, -1
        ignore = self.inside(start)
        if not self.blocked(start, target.xy, ignore):
            return _distance(start, target.xy), -1
        best, first = math.inf, -1
        node_dist = target.node_dist()
        for i, node in enumerate(self.nodes):
            rest = node_dist[i]
            if rest == math.inf:
                continue
            head = _distance(start, node)
            if head + rest < best and not self.blocked(start, node, ignore):
                best, first = head + rest, i
        return best, first

    def length_m(self, start: XY, target: Target) -> float:
        """Length of the shortest flyable path from start to the target (inf when none)."""
        return self._entry(start, target)[0]

    def path(self, start: XY, target: Target) -> list[XY]:
        """Waypoints after start, ending at the target; empty when there is no path."""
        length, node = self._entry(start, target)
        if length == math.inf:
            return []
        waypoints: list[XY] = []
        while node != -1:
            waypoints.append(self.nodes[node])
            node = target.node_next(node)
        waypoints.append(target.xy)
        return waypoints


def _offset_vertices(points: Sequence[XY], margin_m: float) -> list[XY]:
    """Each vertex moved outward along its bisector, so paths through it clear the polygon."""
    n = len(points)
    area2 = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )
    orientation = 1.0 if area2 > 0 else -1.0  # counter-clockwise rings have positive area
    out: list[XY] = []
    for i in range(n):
        prev, here, nxt = points[i - 1], points[i], points[(i + 1) % n]
        e1 = (here[0] - prev[0], here[1] - prev[1])
        e2 = (nxt[0] - here[0], nxt[1] - here[1])
        l1, l2 = math.hypot(*e1) or 1.0, math.hypot(*e2) or 1.0
        # Outward normals of the two edges (right-hand side for a counter-clockwise ring).
        n1 = (orientation * e1[1] / l1, -orientation * e1[0] / l1)
        n2 = (orientation * e2[1] / l2, -orientation * e2[0] / l2)
        bx, by = n1[0] + n2[0], n1[1] + n2[1]
        norm = math.hypot(bx, by)
        if norm < 1e-9:
            continue
        # Stretch along the bisector so both edges are cleared by the margin.
        stretch = min(2.0 / norm, 4.0)
        out.append(
            (here[0] + bx / norm * margin_m * stretch, here[1] + by / norm * margin_m * stretch)
        )
    return out


def planner_for(
    zones: Sequence[NoFlyZone], projection: LocalProjection, *, margin_m: float = 30.0
) -> DetourPlanner:
    """The planner of a set of zones, projected."""
    rings = [[projection.to_xy(lon, lat) for lon, lat in zone.ring] for zone in zones]
    return DetourPlanner(rings, margin_m=margin_m)
