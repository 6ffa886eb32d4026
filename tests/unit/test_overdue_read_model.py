"""The map's overdue cells per plan follow the kernel's rule (airgrid.freshness): for one
plan, the same cells in the same order with the same overdue times; for several, every cell
the kernel lists appears under the plan it is latest for; and the bound keeps the latest."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.active_windows import ActiveWindow
from airgrid.freshness import FreshnessGrid, PlanArea
from airgrid.geo import LocalProjection, destination_point
from services.telemetry.overdue_read_model import overdue_by_plan

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENTRE = (114.40, 30.50)
HOUR_S = 3600
NOW_MS = 1_796_025_600_000  # 2026-11-30 16:00 in Shanghai


def _square(half_m: float) -> tuple[tuple[float, float], ...]:
    corners = [
        destination_point(*CENTRE, bearing, half_m * math.sqrt(2))
        for bearing in (45, 135, 225, 315)
    ]
    return (*corners, corners[0])


WHOLE = PlanArea("whole", "urban", HOUR_S, ring=_square(1_500.0))
ROAD = PlanArea(
    "road",
    "traffic",
    1200,
    (ActiveWindow.parse("15:30", "17:00"),),
    path=(destination_point(*CENTRE, 270, 1500), destination_point(*CENTRE, 90, 1500)),
    width_m=300.0,
)
GRID = FreshnessGrid(
    _square(1_500.0), LocalProjection(*CENTRE), cell_m=250.0, timezone=SHANGHAI
)  # 144 cells

# Per cell: never seen, or seen this many minutes before now.
sightings = st.lists(
    st.one_of(st.none(), st.integers(min_value=0, max_value=300)), min_size=144, max_size=144
)


def _seen(minutes: list[int | None]) -> None:
    assert len(GRID) == len(minutes)
    GRID.last_seen_ms = np.asarray(
        [-1 if m is None else NOW_MS - m * 60_000 for m in minutes], dtype=np.int64
    )


@settings(max_examples=60, deadline=None)
@given(sightings)
def test_one_plan_lists_what_the_kernel_lists_in_its_order(minutes: list[int | None]) -> None:
    _seen(minutes)
    GRID.set_plans([WHOLE])
    mine = overdue_by_plan(GRID, NOW_MS, per_plan=len(GRID))
    kernel = GRID.overdue(NOW_MS, limit=len(GRID))
    assert [r.cell for r in mine] == [c.cell for c in kernel]
    for row, cell in zip(mine, kernel, strict=True):
        assert (row.plan, row.department, row.last_seen_ms) == ("whole", "urban", cell.last_seen_ms)
        assert row.overdue_s == cell.overdue_s
        assert row.lateness == (None if math.isinf(cell.lateness) else cell.lateness)
    bounded = overdue_by_plan(GRID, NOW_MS, per_plan=5)
    assert [r.cell for r in bounded] == [c.cell for c in kernel[:5]]


@settings(max_examples=60, deadline=None)
@given(sightings)
def test_several_plans_hold_every_overdue_cell_under_its_latest_plan(
    minutes: list[int | None],
) -> None:
    _seen(minutes)
    GRID.set_plans([WHOLE, ROAD])
    mine = {(r.plan, r.cell) for r in overdue_by_plan(GRID, NOW_MS, per_plan=len(GRID))}
    kernel = GRID.overdue(NOW_MS, limit=len(GRID))
    assert {(c.plan_id, c.cell) for c in kernel} <= mine
    assert {cell for _, cell in mine} == {c.cell for c in kernel}
    # The road's window opened at 15:30: a cell never seen is due from then, 10 min late now.
    road = [r for r in overdue_by_plan(GRID, NOW_MS, per_plan=len(GRID)) if r.plan == "road"]
    assert all(r.overdue_s is not None and r.overdue_s <= 600.0 for r in road)
