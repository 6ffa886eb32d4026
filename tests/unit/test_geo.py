"""Geometry on lon/lat degrees: distances, bearings, polygons, intersections, projection."""

from __future__ import annotations

import math

import pytest

from airgrid.geo import (
    EARTH_RADIUS_M,
    LocalProjection,
    bearing_deg,
    destination_point,
    grid_inside,
    haversine_m,
    is_valid_lon_lat,
    point_in_polygon,
    point_in_polygon_with_holes,
    polygon_area_km2,
    polygon_centroid,
    ring_is_closed,
    ring_self_intersects,
    segment_intersects_polygon,
    segments_intersect,
)

SQUARE = [(114.0, 30.0), (114.1, 30.0), (114.1, 30.1), (114.0, 30.1), (114.0, 30.0)]
HOLE = [(114.04, 30.04), (114.06, 30.04), (114.06, 30.06), (114.04, 30.06), (114.04, 30.04)]


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert abs(haversine_m(114.0, 30.0, 114.0, 31.0) - 111_195) < 10
    assert math.isclose(haversine_m(0.0, 0.0, 1.0, 0.0), math.radians(1) * EARTH_RADIUS_M)


def test_known_city_distance_and_symmetry() -> None:
    # Wuhan (Hankou) to Beijing is about 1,050 km on the great circle.
    wuhan, beijing = (114.305, 30.593), (116.407, 39.904)
    distance = haversine_m(*wuhan, *beijing)
    assert 1_040_000 < distance < 1_060_000
    assert math.isclose(distance, haversine_m(*beijing, *wuhan))
    assert haversine_m(*wuhan, *wuhan) == 0.0


def test_bearings_of_the_compass_points() -> None:
    assert abs(bearing_deg(114.0, 30.0, 114.0, 30.1) - 0.0) < 1e-6
    assert abs(bearing_deg(114.0, 30.0, 114.1, 30.0) - 90.0) < 0.1
    assert abs(bearing_deg(114.0, 30.0, 114.0, 29.9) - 180.0) < 1e-6
    assert abs(bearing_deg(114.0, 30.0, 113.9, 30.0) - 270.0) < 0.1


def test_destination_and_bearing_round_trip() -> None:
    for bearing in (0.0, 60.0, 135.0, 270.0, 359.0):
        lon, lat = destination_point(114.4, 30.5, bearing, 5_000.0)
        assert abs(haversine_m(114.4, 30.5, lon, lat) - 5_000.0) < 0.01
        assert abs((bearing_deg(114.4, 30.5, lon, lat) - bearing + 180) % 360 - 180) < 0.01


def test_point_in_polygon_closed_or_open() -> None:
    assert point_in_polygon(114.05, 30.05, SQUARE)
    assert point_in_polygon(114.05, 30.05, SQUARE[:-1])
    assert not point_in_polygon(114.2, 30.05, SQUARE)
    assert not point_in_polygon(114.05, 29.99, SQUARE)


def test_point_in_a_concave_polygon() -> None:
    # A U shape: the notch between the arms is outside.
    u_shape = [(0, 0), (3, 0), (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)]
    assert point_in_polygon(0.5, 2.5, u_shape)
    assert point_in_polygon(2.5, 2.5, u_shape)
    assert not point_in_polygon(1.5, 2.0, u_shape)


def test_point_in_polygon_with_holes() -> None:
    assert not point_in_polygon_with_holes(114.05, 30.05, [SQUARE, HOLE])
    assert point_in_polygon_with_holes(114.02, 30.02, [SQUARE, HOLE])
    assert not point_in_polygon_with_holes(114.2, 30.02, [SQUARE, HOLE])
    assert point_in_polygon_with_holes(114.05, 30.05, [SQUARE])
    assert not point_in_polygon_with_holes(114.05, 30.05, [])


def test_area_of_a_known_square() -> None:
    side_x = haversine_m(114.0, 30.05, 114.1, 30.05)
    side_y = haversine_m(114.05, 30.0, 114.05, 30.1)
    assert math.isclose(polygon_area_km2(SQUARE), side_x * side_y / 1e6, rel_tol=0.002)
    assert math.isclose(polygon_area_km2(SQUARE), polygon_area_km2(SQUARE[::-1]))
    assert polygon_area_km2(SQUARE[:2]) == 0.0


def test_area_of_a_large_cell_matches_the_spherical_formula() -> None:
    # A 1° x 1° cell: exact area R² · Δλ · (sin φ2 − sin φ1).
    cell = [(114.0, 30.0), (115.0, 30.0), (115.0, 31.0), (114.0, 31.0)]
    exact = EARTH_RADIUS_M**2 * math.radians(1) * (math.sin(math.radians(31)) - 0.5) / 1e6
    assert math.isclose(polygon_area_km2(cell), exact, rel_tol=0.005)


def test_centroid_of_a_square() -> None:
    lon, lat = polygon_centroid(SQUARE)
    assert abs(lon - 114.05) < 1e-6 and abs(lat - 30.05) < 1e-3


def test_bow_tie_self_intersects_and_square_does_not() -> None:
    bow_tie = [(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]
    assert ring_self_intersects(bow_tie)
    assert not ring_self_intersects(SQUARE)
    assert not ring_self_intersects(SQUARE[:-1])
    assert ring_self_intersects([(0.0, 0.0), (1.0, 0.0), (0.0, 0.0)])


def test_ring_is_closed() -> None:
    assert ring_is_closed(SQUARE)
    assert not ring_is_closed(SQUARE[:-1])
    assert not ring_is_closed([(0.0, 0.0), (1.0, 1.0), (0.0, 0.0)])


def test_segments_intersect_cross_touch_and_miss() -> None:
    assert segments_intersect((0.0, 0.0), (2.0, 2.0), (0.0, 2.0), (2.0, 0.0))
    assert segments_intersect((0.0, 0.0), (1.0, 1.0), (1.0, 1.0), (2.0, 0.0))
    assert not segments_intersect((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
    assert not segments_intersect((0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0))


def test_segment_crossing_entering_or_missing_a_polygon() -> None:
    assert segment_intersects_polygon((113.9, 30.05), (114.2, 30.05), SQUARE)  # through
    assert segment_intersects_polygon((113.9, 30.05), (114.05, 30.05), SQUARE)  # ends inside
    assert segment_intersects_polygon((114.02, 30.02), (114.08, 30.08), SQUARE)  # wholly inside
    assert segment_intersects_polygon((113.95, 30.0), (114.0, 30.05), SQUARE)  # clips a corner
    assert not segment_intersects_polygon((113.9, 30.2), (114.2, 30.2), SQUARE)
    assert not segment_intersects_polygon((113.8, 30.0), (113.9, 30.1), SQUARE)


def test_valid_coordinates() -> None:
    assert is_valid_lon_lat(114.4, 30.5)
    assert is_valid_lon_lat(-180.0, -90.0) and is_valid_lon_lat(180.0, 90.0)
    assert not is_valid_lon_lat(181.0, 0.0)
    assert not is_valid_lon_lat(0.0, -90.5)
    assert not is_valid_lon_lat(0.0, math.nan)
    assert not is_valid_lon_lat(math.inf, 0.0)


def test_local_projection_round_trip_and_distance() -> None:
    projection = LocalProjection(114.43, 30.48)
    assert projection.to_xy(114.43, 30.48) == (0.0, 0.0)
    x, y = projection.to_xy(114.45, 30.50)
    assert x > 0 and y > 0
    lon, lat = projection.to_lon_lat(x, y)
    assert abs(lon - 114.45) < 1e-9 and abs(lat - 30.50) < 1e-9
    exact = haversine_m(114.43, 30.48, 114.45, 30.50)
    assert abs(math.hypot(x, y) - exact) / exact < 0.001
    far_x, far_y = projection.to_xy(114.63, 30.38)
    far_exact = haversine_m(114.43, 30.48, 114.63, 30.38)
    assert abs(math.hypot(far_x, far_y) - far_exact) / far_exact < 0.002


def test_grid_inside_a_square_kilometre_has_sixteen_250_m_cells() -> None:
    projection = LocalProjection(114.4, 30.5)
    corners = [(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0), (0.0, 1000.0), (0.0, 0.0)]
    ring = [projection.to_lon_lat(x, y) for x, y in corners]
    cells = grid_inside(ring, 250.0, projection)
    assert len(cells) == 16
    assert cells[0] == pytest.approx((125.0, 125.0))
    with pytest.raises(ValueError, match="spacing_m"):
        grid_inside(ring, 0.0, projection)
