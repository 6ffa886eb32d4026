"""Geometry on lon/lat degrees: distances, polygons, intersections."""

from __future__ import annotations

import math

from airgrid.geo import (
    LocalProjection,
    bearing_deg,
    destination_point,
    haversine_m,
    is_valid_lon_lat,
    point_in_polygon,
    point_in_polygon_with_holes,
    polygon_area_km2,
    ring_is_closed,
    ring_self_intersects,
    segment_intersects_polygon,
)

SQUARE = [(114.0, 30.0), (114.1, 30.0), (114.1, 30.1), (114.0, 30.1), (114.0, 30.0)]


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert abs(haversine_m(114.0, 30.0, 114.0, 31.0) - 111_195) < 50


def test_destination_and_bearing_round_trip() -> None:
    lon, lat = destination_point(114.4, 30.5, 60.0, 5_000.0)
    assert abs(haversine_m(114.4, 30.5, lon, lat) - 5_000.0) < 0.5
    assert abs(bearing_deg(114.4, 30.5, lon, lat) - 60.0) < 0.1


def test_point_in_polygon_and_holes() -> None:
    assert point_in_polygon(114.05, 30.05, SQUARE)
    assert not point_in_polygon(114.2, 30.05, SQUARE)
    hole = [(114.04, 30.04), (114.06, 30.04), (114.06, 30.06), (114.04, 30.06), (114.04, 30.04)]
    assert not point_in_polygon_with_holes(114.05, 30.05, [SQUARE, hole])
    assert point_in_polygon_with_holes(114.02, 30.02, [SQUARE, hole])


def test_area_of_a_known_square() -> None:
    side_x = haversine_m(114.0, 30.05, 114.1, 30.05)
    side_y = haversine_m(114.05, 30.0, 114.05, 30.1)
    assert math.isclose(polygon_area_km2(SQUARE), side_x * side_y / 1e6, rel_tol=0.005)


def test_bow_tie_self_intersects_and_square_does_not() -> None:
    bow_tie = [(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]
    assert ring_self_intersects(bow_tie)
    assert not ring_self_intersects(SQUARE)
    assert ring_is_closed(SQUARE) and not ring_is_closed(SQUARE[:-1])


def test_segment_through_a_polygon() -> None:
    assert segment_intersects_polygon((113.9, 30.05), (114.2, 30.05), SQUARE)
    assert not segment_intersects_polygon((113.9, 30.2), (114.2, 30.2), SQUARE)


def test_valid_coordinates() -> None:
    assert is_valid_lon_lat(114.4, 30.5)
    assert not is_valid_lon_lat(181.0, 0.0)
    assert not is_valid_lon_lat(0.0, math.nan)


def test_local_projection_round_trip() -> None:
    projection = LocalProjection(114.43, 30.48)
    x, y = projection.to_xy(114.45, 30.50)
    lon, lat = projection.to_lon_lat(x, y)
    assert abs(lon - 114.45) < 1e-9 and abs(lat - 30.50) < 1e-9
    assert abs(math.hypot(x, y) - haversine_m(114.43, 30.48, 114.45, 30.50)) < 5
