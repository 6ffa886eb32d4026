"""Freshness: cells seen by camera footprints, due under their plans' windows, snapshots."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.active_windows import ActiveWindow, open_since
from airgrid.freshness import (
    MAX_INSPECTION_ALT_M,
    MIN_INSPECTION_ALT_M,
    NEVER,
    FreshnessGrid,
    FreshnessSnapshot,
    PlanArea,
    footprint_radius_m,
)
from airgrid.geo import LocalProjection, destination_point, haversine_m
from airgrid.reference import DEFAULT_CAMERA_FOV_DEG, load_reference

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENTRE = (114.40, 30.50)
CELL_M = 250.0
HOUR_S = 3600
# 2026-12-04 00:00 in Shanghai.
MIDNIGHT_MS = int(datetime(2026, 12, 4, tzinfo=SHANGHAI).timestamp() * 1000)


def _square(half_m: float) -> tuple[tuple[float, float], ...]:
    corners = [
        destination_point(*CENTRE, bearing, half_m * math.sqrt(2))
        for bearing in (45, 135, 225, 315)
    ]
    return (*corners, corners[0])


ZONE = _square(2_000.0)
WHOLE = PlanArea("whole", "urban", HOUR_S, ring=ZONE)
ROAD = PlanArea(
    "road",
    "traffic",
    1200,
    (ActiveWindow.parse("07:00", "09:00"),),
    path=(destination_point(*CENTRE, 270, 1500), destination_point(*CENTRE, 90, 1500)),
    width_m=300.0,
)


def _grid(*plans: PlanArea) -> FreshnessGrid:
    return FreshnessGrid(
        ZONE, LocalProjection(*CENTRE), cell_m=CELL_M, timezone=SHANGHAI, plans=plans
    )


positions = st.tuples(
    st.floats(min_value=CENTRE[0] - 0.03, max_value=CENTRE[0] + 0.03),
    st.floats(min_value=CENTRE[1] - 0.03, max_value=CENTRE[1] + 0.03),
)
times = st.integers(min_value=MIDNIGHT_MS, max_value=MIDNIGHT_MS + 2 * 86_400_000)
radii = st.floats(min_value=0.0, max_value=600.0)


def test_the_grid_is_the_coverage_grid() -> None:
    grid = _grid(WHOLE)
    assert len(grid) == 16 * 16
    assert grid.last_seen_ms.dtype == np.int64
    assert (grid.last_seen_ms == NEVER).all()


def test_the_footprint_follows_altitude_and_field_of_view() -> None:
    assert footprint_radius_m(120.0, 90.0) == pytest.approx(120.0)
    assert footprint_radius_m(MIN_INSPECTION_ALT_M - 1, 90.0) == 0.0
    assert footprint_radius_m(MAX_INSPECTION_ALT_M + 1, 90.0) == 0.0
    assert footprint_radius_m(100.0, math.nan) == 0.0
    assert 60 < footprint_radius_m(120.0, DEFAULT_CAMERA_FOV_DEG) < 70


@given(positions, radii)
def test_a_footprint_marks_exactly_the_cells_whose_centres_it_covers(
    position: tuple[float, float], radius: float
) -> None:
    grid = _grid(WHOLE)
    marked = set(int(c) for c in grid.footprint_cells(*position, radius))
    for cell in range(len(grid)):
        distance = haversine_m(*position, *grid.cell_centre(cell))
        if cell in marked:
            # Never a cell outside: the projection's error at 3 km is far below a metre.
            assert distance <= radius + 0.5
        elif radius > 0:
            assert distance >= radius - 0.5


@given(positions, times, st.integers(min_value=1, max_value=3))
def test_a_cell_seen_at_t_is_fresh_until_t_plus_interval_and_not_after(
    position: tuple[float, float], seen_ms: int, hours: int
) -> None:
    plan = PlanArea("whole", "urban", hours * HOUR_S, ring=ZONE)
    grid = _grid(plan)
    seen = grid.observe(*position, 300.0, seen_ms)
    interval_ms = plan.revisit_interval_s * 1000
    at_deadline = grid.report(seen_ms + interval_ms)
    after = grid.report(seen_ms + interval_ms + 1)
    assert at_deadline.fresh_cells == seen == at_deadline.plans[0].fresh_cells
    assert after.fresh_cells == 0
    assert at_deadline.due_cells == after.due_cells == len(grid)


def test_sightings_out_of_order_keep_the_latest() -> None:
    grid = _grid(WHOLE)
    grid.observe(*CENTRE, 200.0, MIDNIGHT_MS + 10_000)
    grid.observe(*CENTRE, 200.0, MIDNIGHT_MS)
    assert int(grid.last_seen_ms.max()) == MIDNIGHT_MS + 10_000


def test_a_plan_is_due_only_inside_its_window_and_the_opening_counts_as_a_sighting() -> None:
    grid = _grid(ROAD)
    road_cells = int(grid.cells_of(ROAD).sum())
    assert road_cells > 0
    before = grid.report(MIDNIGHT_MS + 7 * 3_600_000 - 1)
    assert before.plans[0].active is False and before.due_cells == 0 and before.share == 1.0
    opening = MIDNIGHT_MS + 7 * 3_600_000
    assert grid.report(opening).fresh_cells == road_cells
    assert grid.report(opening + 1_200_000).fresh_cells == road_cells
    assert grid.report(opening + 1_200_001).fresh_cells == 0
    grid.observe(*CENTRE, 400.0, opening + 1_800_000)
    seen = grid.report(opening + 1_800_000)
    assert 0 < seen.fresh_cells < road_cells
    assert grid.report(opening + 3_000_000).fresh_cells == seen.fresh_cells
    assert grid.report(opening + 3_000_001).fresh_cells == 0
    after = grid.report(MIDNIGHT_MS + 9 * 3_600_000)
    assert after.due_cells == 0 and after.plans[0].active is False


def test_a_corridor_holds_the_cells_within_half_its_width() -> None:
    grid = _grid(ROAD)
    mask = grid.cells_of(ROAD)
    for cell in range(len(grid)):
        lon, lat = grid.cell_centre(cell)
        # The road runs east-west through the centre: distance is the latitude offset.
        offset = haversine_m(lon, CENTRE[1], lon, lat)
        inside_x = abs(haversine_m(CENTRE[0], lat, lon, lat)) <= 1500
        if inside_x and offset < 149:
            assert mask[cell]
        if offset > 151:
            assert not mask[cell]


def test_a_cell_is_fresh_overall_only_if_fresh_under_every_active_plan() -> None:
    grid = _grid(WHOLE, ROAD)
    at = MIDNIGHT_MS + 8 * 3_600_000
    grid.observe(*CENTRE, 3_000.0, at - 1_500_000)
    report = grid.report(at)
    whole, road = (
        {p.plan_id: p for p in report.plans}["whole"],
        {p.plan_id: p for p in report.plans}["road"],
    )
    assert whole.share == 1.0
    assert road.share == 0.0
    assert report.fresh_cells == len(grid) - road.due_cells


@settings(max_examples=50)
@given(
    st.lists(st.tuples(positions, radii, times), max_size=20),
    times,
)
def test_shares_stay_within_0_and_1(
    sightings: list[tuple[tuple[float, float], float, int]], now_ms: int
) -> None:
    grid = _grid(WHOLE, ROAD)
    for position, radius, at in sightings:
        grid.observe(*position, radius, at)
    report = grid.report(now_ms)
    assert 0.0 <= report.share <= 1.0
    assert 0 <= report.fresh_cells <= report.due_cells <= len(grid)
    for plan in report.plans:
        assert 0.0 <= plan.share <= 1.0
        assert plan.fresh_cells <= plan.due_cells <= plan.cells
    overdue = grid.overdue(now_ms, limit=len(grid))
    assert len(overdue) == report.due_cells - report.fresh_cells
    lateness = [c.lateness for c in overdue]
    assert lateness == sorted(lateness, reverse=True)
    assert all(c.lateness > 0 for c in overdue)


@settings(max_examples=50)
@given(st.lists(st.tuples(positions, radii, times), max_size=20), times)
def test_a_snapshot_round_trip_restores_an_equal_grid(
    sightings: list[tuple[tuple[float, float], float, int]], now_ms: int
) -> None:
    grid = _grid(WHOLE, ROAD)
    for position, radius, at in sightings:
        grid.observe(*position, radius, at)
    snapshot = grid.snapshot()
    decoded = FreshnessSnapshot.decode(snapshot.encode())
    assert decoded == snapshot
    rebuilt = _grid(WHOLE, ROAD)
    rebuilt.restore(decoded)
    assert (rebuilt.last_seen_ms == grid.last_seen_ms).all()
    assert rebuilt.report(now_ms) == grid.report(now_ms)
    assert rebuilt.overdue(now_ms) == grid.overdue(now_ms)


def test_a_snapshot_of_another_grid_is_refused() -> None:
    other = FreshnessGrid(
        _square(1_000.0), LocalProjection(*CENTRE), cell_m=CELL_M, timezone=SHANGHAI
    )
    with pytest.raises(ValueError, match="another grid"):
        _grid(WHOLE).restore(other.snapshot())
    with pytest.raises(ValueError):
        FreshnessSnapshot.decode(b"nope")


def test_overdue_cells_come_as_geojson_latest_first() -> None:
    grid = _grid(WHOLE)
    grid.observe(*CENTRE, 1_000.0, MIDNIGHT_MS)
    collection = grid.overdue_geojson(MIDNIGHT_MS + 2 * HOUR_S * 1000, limit=5)
    features = collection["features"]
    assert collection["type"] == "FeatureCollection" and len(features) == 5
    assert [f["properties"]["rank"] for f in features] == [1, 2, 3, 4, 5]
    ring = features[0]["geometry"]["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    # Never-seen cells rank first and carry no lateness (JSON has no infinity).
    assert features[0]["properties"]["last_seen_ms"] is None
    assert features[0]["properties"]["lateness"] is None


def test_every_shipped_plan_holds_cells_of_the_reference_zone() -> None:
    reference = load_reference()
    plans = [PlanArea.from_spec(p) for p in reference.inspection_plans]
    grid = FreshnessGrid(
        reference.zone.boundary,
        LocalProjection(*reference.zone.centre),
        cell_m=CELL_M,
        timezone=SHANGHAI,
        plans=plans,
    )
    assert 7_000 < len(grid) < 9_500  # 518 km² in 250 m cells
    empty = [p.id for p in plans if not grid.cells_of(p).any()]
    assert empty == []
    report = grid.report(int(datetime(2026, 12, 4, 8, tzinfo=UTC).timestamp() * 1000))
    assert report.due_cells == len(grid)  # the baseline plan covers the zone, all day
    assert report.fresh_cells == 0


def test_a_window_past_midnight_opened_the_evening_before() -> None:
    windows = (ActiveWindow.parse("22:00", "02:00"),)
    one_am = datetime(2026, 12, 5, 1, 0, 30, tzinfo=SHANGHAI)
    assert open_since(windows, one_am, SHANGHAI) == datetime(2026, 12, 4, 22, tzinfo=SHANGHAI)
    back_to_back = (ActiveWindow.parse("07:00", "08:00"), ActiveWindow.parse("08:00", "09:00"))
    half_past_eight = datetime(2026, 12, 4, 8, 30, tzinfo=SHANGHAI)
    assert open_since(back_to_back, half_past_eight, SHANGHAI) == datetime(
        2026, 12, 4, 7, tzinfo=SHANGHAI
    )
    assert open_since((), one_am, SHANGHAI) is None
    with pytest.raises(ValueError):
        open_since(windows, datetime(2026, 12, 4, 12, tzinfo=SHANGHAI), SHANGHAI)
