"""Pure geometry on WGS84 longitude/latitude degrees: distances, bearings, polygons, projection.

Points are (lon, lat) in degrees, as in GeoJSON (RFC 7946). Rings are sequences of points,
closed (first point repeated last) or not. Polygon tests work in the lon/lat plane, which is
exact enough at city scale (tens of kilometres, far from the poles and the antimeridian).
No I/O, no dependencies beyond the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

Point = tuple[float, float]
Ring = Sequence[Sequence[float]]
"""A ring of (lon, lat) points; tuples from the reference data or lists from GeoJSON."""


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial great-circle bearing from the first point to the second: 0 = north, clockwise."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def destination_point(lon: float, lat: float, bearing_deg: float, distance_m: float) -> Point:
    """The point reached from (lon, lat) after distance_m along a great circle at bearing_deg."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return ((math.degrees(l2) + 540.0) % 360.0 - 180.0, math.degrees(p2))


def is_valid_lon_lat(lon: float, lat: float) -> bool:
    """Finite, longitude in [-180, 180] and latitude in [-90, 90]."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return False
    return -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0


def _open(ring: Ring) -> list[Point]:
    """The ring's distinct vertices, without the closing repeat."""
    points = [(float(p[0]), float(p[1])) for p in ring]
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    return points


def ring_is_closed(ring: Ring) -> bool:
    """A GeoJSON linear ring: at least four positions, the last equal to the first."""
    return len(ring) >= 4 and tuple(ring[0][:2]) == tuple(ring[-1][:2])


def point_in_polygon(lon: float, lat: float, ring: Ring) -> bool:
    """Ray casting (even-odd); the ring is a sequence of (lon, lat), closed or not."""
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
    """GeoJSON Polygon coordinates: the first ring is the exterior, the others are holes."""
    if not rings or not point_in_polygon(lon, lat, rings[0]):
        return False
    return not any(point_in_polygon(lon, lat, hole) for hole in rings[1:])


def polygon_area_km2(ring: Ring) -> float:
    """Area on the sphere, via the Lambert cylindrical equal-area projection and the shoelace.

    The projection preserves area exactly; the only error is that edges are straight in the
    projection rather than great circles, which is far below 0.1 % for city-sized polygons.
    """
    points = _open(ring)
    n = len(points)
    if n < 3:
        return 0.0
    lon0 = points[0][0]
    xy = [
        (math.radians(lon - lon0) * EARTH_RADIUS_M, math.sin(math.radians(lat)) * EARTH_RADIUS_M)
        for lon, lat in points
    ]
    twice = 0.0
    for i in range(n):
        x1, y1 = xy[i]
        x2, y2 = xy[(i + 1) % n]
        twice += x1 * y2 - x2 * y1
    return abs(twice) / 2.0 / 1e6


def polygon_centroid(ring: Ring) -> Point:
    """Area centroid of a simple polygon (lon, lat); the vertex mean if it is degenerate."""
    points = _open(ring)
    if not points:
        raise ValueError("an empty ring has no centroid")
    mean = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))
    projection = LocalProjection(*mean)
    xy = [projection.to_xy(*p) for p in points]
    n = len(xy)
    twice_area = cx = cy = 0.0
    for i in range(n):
        x1, y1 = xy[i]
        x2, y2 = xy[(i + 1) % n]
        cross = x1 * y2 - x2 * y1
        twice_area += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if abs(twice_area) < 1e-9:
        return mean
    return projection.to_lon_lat(cx / (3.0 * twice_area), cy / (3.0 * twice_area))


def _orientation(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """r, known collinear with pq, lies within pq's bounding box."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Segments ab and cd cross or touch (collinear overlaps included)."""
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0 > o2) or (o1 < 0 < o2)) and ((o3 > 0 > o4) or (o3 < 0 < o4)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def ring_self_intersects(ring: Ring) -> bool:
    """True when two non-adjacent edges cross or touch, or the ring has under three vertices.

    O(n²) over the edges, which is fine for hand-drawn boundaries and geofences.
    """
    points = _open(ring)
    n = len(points)
    if n < 3:
        return True
    if len(set(points)) != n:
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
    """Does the straight leg a→b enter the polygon: cross its boundary or lie inside it?"""
    if point_in_polygon(a[0], a[1], ring) or point_in_polygon(b[0], b[1], ring):
        return True
    points = _open(ring)
    n = len(points)
    return any(segments_intersect(a, b, points[i], points[(i + 1) % n]) for i in range(n))


class LocalProjection:
    """Equirectangular projection around a reference point, in metres east/north of it.

    Two multiplications per point, so it suits hot paths (grid scans, nearest-drone search).
    Distances are within about 0.1 % of the great circle for points within 30 km of the
    reference point at mid latitudes.
    """

    __slots__ = ("kx", "ky", "lat0", "lon0")

    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0 = lon0
        self.lat0 = lat0
        self.ky = math.radians(1.0) * EARTH_RADIUS_M
        self.kx = self.ky * math.cos(math.radians(lat0))

    def to_xy(self, lon: float, lat: float) -> Point:
        """(x, y) in metres: x east, y north of the reference point."""
        return ((lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky)

    def to_lon_lat(self, x: float, y: float) -> Point:
        """The inverse of to_xy."""
        return (self.lon0 + x / self.kx, self.lat0 + y / self.ky)


def grid_inside(ring: Ring, spacing_m: float, projection: LocalProjection) -> list[Point]:
    """Centres (x, y), in the projection's metres, of the spacing_m square cells inside ring.

    The grid starts half a cell in from the ring's bounding box, so the same ring, spacing and
    projection always give the same cells; projection.to_lon_lat turns a centre back into a
    position.
    """
    if spacing_m <= 0:
        raise ValueError("spacing_m must be positive")
    xy = [projection.to_xy(lon, lat) for lon, lat in _open(ring)]
    x0, x1 = min(p[0] for p in xy), max(p[0] for p in xy)
    y0, y1 = min(p[1] for p in xy), max(p[1] for p in xy)
    cells: list[Point] = []
    y = y0 + spacing_m / 2
    while y < y1:
        x = x0 + spacing_m / 2
        while x < x1:
            if point_in_polygon(*projection.to_lon_lat(x, y), ring):
                cells.append((x, y))
            x += spacing_m
        y += spacing_m
    return cells
