"""Pure geometry on WGS84 longitude/latitude degrees: distances, bearings, polygons."""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8

Point = tuple[float, float]
Ring = Sequence[Sequence[float]]


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial bearing from the first point to the second, 0 = north, clockwise."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def destination_point(lon: float, lat: float, bearing: float, distance_m: float) -> Point:
    """The point reached from (lon, lat) flying distance_m along the bearing."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return ((math.degrees(l2) + 540.0) % 360.0 - 180.0, math.degrees(p2))


def is_valid_lon_lat(lon: float, lat: float) -> bool:
    return (
        math.isfinite(lon) and math.isfinite(lat) and -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0
    )


def point_in_polygon(lon: float, lat: float, ring: Ring) -> bool:
    """Ray casting; the ring is a sequence of (lon, lat), closed or not."""
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def point_in_polygon_with_holes(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    """GeoJSON polygon coordinates: the first ring is the exterior, the others are holes."""
    if not rings or not point_in_polygon(lon, lat, rings[0]):
        return False
    return not any(point_in_polygon(lon, lat, hole) for hole in rings[1:])


class LocalProjection:
    """Equirectangular projection around a reference point: metres, fast, city-scale exact."""

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0 = lon0
        self.lat0 = lat0
        self.kx = math.radians(1.0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
        self.ky = math.radians(1.0) * EARTH_RADIUS_M

    def to_xy(self, lon: float, lat: float) -> Point:
        return ((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky)

    def to_lon_lat(self, x: float, y: float) -> Point:
        return (self.lon0 + x / self.kx, self.lat0 + y / self.ky)


def _open(ring: Ring) -> list[Point]:
    points = [(float(p[0]), float(p[1])) for p in ring]
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    return points


def polygon_area_km2(ring: Ring) -> float:
    """Area by the shoelace formula on a local projection (well under 0.5 % off at city scale)."""
    points = _open(ring)
    if len(points) < 3:
        return 0.0
    lon0 = sum(p[0] for p in points) / len(points)
    lat0 = sum(p[1] for p in points) / len(points)
    projection = LocalProjection(lon0, lat0)
    xy = [projection.to_xy(*p) for p in points]
    twice = sum(
        xy[i][0] * xy[(i + 1) % len(xy)][1] - xy[(i + 1) % len(xy)][0] * xy[i][1]
        for i in range(len(xy))
    )
    return abs(twice) / 2.0 / 1e6


def ring_is_closed(ring: Ring) -> bool:
    return len(ring) >= 4 and tuple(ring[0][:2]) == tuple(ring[-1][:2])


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Proper or touching intersection of segments ab and cd."""
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True

    def on_segment(p: Point, q: Point, r: Point) -> bool:
        return (
            min(p[0], q[0]) <= r[0] <= max(p[0], q[0])
            and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])
        )

    return (
        (o1 == 0 and on_segment(a, b, c))
        or (o2 == 0 and on_segment(a, b, d))
        or (o3 == 0 and on_segment(c, d, a))
        or (o4 == 0 and on_segment(c, d, b))
    )


def ring_self_intersects(ring: Ring) -> bool:
    """True when two non-adjacent edges of the ring cross or touch."""
    points = _open(ring)
    n = len(points)
    if n < 3:
        return True
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if segments_intersect(edges[i][0], edges[i][1], edges[j][0], edges[j][1]):
                return True
    return False


def segment_intersects_polygon(a: Point, b: Point, ring: Ring) -> bool:
    """Does the segment a→b cross the polygon's boundary or lie inside it?"""
    if point_in_polygon(a[0], a[1], ring) or point_in_polygon(b[0], b[1], ring):
        return True
    points = _open(ring)
    n = len(points)
    return any(segments_intersect(a, b, points[i], points[(i + 1) % n]) for i in range(n))
