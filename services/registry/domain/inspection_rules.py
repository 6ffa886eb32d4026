"""Inspection plan rules: revisit intervals, daily active windows, corridor widths and where a
plan's geometry may lie. Pure: no clock, no I/O; every check returns sentences to act on."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from airgrid.active_windows import (
    MINUTES_PER_DAY,
    ActiveWindow,
    clock_minutes,
    is_active_at,
    open_minutes_per_day,
)
from airgrid.geo import EARTH_RADIUS_M, point_in_polygon
from services.registry.domain.geojson import position_problems

# A drone needs minutes to reach and sweep even a small area: a shorter revisit is a standing
# patrol, which dispatch would never grant against its patrol budget.
MIN_REVISIT_S = 300
# Beyond a week a place is not inspected, it is forgotten; the baseline plan revisits daily.
MAX_REVISIT_S = 7 * 86_400
# A corridor is a road or shore seen from above; wider than this it is an area.
MAX_CORRIDOR_WIDTH_M = 2_000.0
MAX_LINE_POSITIONS = 500
# A plan's vertices may reach this far beyond the zone's bounding box (a shore just outside).
PLAN_MARGIN_M = 1_000.0

__all__ = [
    "MAX_CORRIDOR_WIDTH_M",
    "MAX_LINE_POSITIONS",
    "MAX_REVISIT_S",
    "MINUTES_PER_DAY",
    "MIN_REVISIT_S",
    "PLAN_MARGIN_M",
    "ActiveWindow",
    "clock_minutes",
    "corridor_width_problems",
    "is_active_at",
    "line_problems",
    "open_minutes_per_day",
    "revisit_problems",
    "zone_problems",
]


def revisit_problems(interval_s: int) -> list[str]:
    if interval_s < MIN_REVISIT_S:
        return [
            f"revisit every {interval_s} s is under the {MIN_REVISIT_S} s (5 min) minimum; "
            "a place cannot be swept that often"
        ]
    if interval_s > MAX_REVISIT_S:
        return [f"revisit every {interval_s} s is over the {MAX_REVISIT_S} s (7 days) maximum"]
    return []


def corridor_width_problems(width_m: float | None) -> list[str]:
    if width_m is None:
        return ["a corridor (LineString) needs width_m, its full width in metres"]
    if not math.isfinite(width_m) or width_m <= 0:
        return [f"width_m {width_m} must be a number above 0"]
    if width_m > MAX_CORRIDOR_WIDTH_M:
        return [
            f"width_m {width_m} is over {MAX_CORRIDOR_WIDTH_M:.0f} m; draw a wide strip as an "
            "area (Polygon)"
        ]
    return []


def line_problems(coordinates: Any) -> list[str]:
    """A corridor's GeoJSON LineString: 2 … MAX_LINE_POSITIONS positions in range, and no
    zero-length step (a repeated position)."""
    if not isinstance(coordinates, Sequence) or isinstance(coordinates, str):
        return ["coordinates must be a list of positions"]
    if not 2 <= len(coordinates) <= MAX_LINE_POSITIONS:
        return [f"a LineString has {len(coordinates)} positions; it needs 2 … {MAX_LINE_POSITIONS}"]
    problems: list[str] = []
    for i, position in enumerate(coordinates):
        problems.extend(position_problems(position, f"position {i}"))
    if problems:
        return problems
    for i in range(1, len(coordinates)):
        if list(coordinates[i][:2]) == list(coordinates[i - 1][:2]):
            problems.append(f"positions {i - 1} and {i} are equal; remove the repeat")
    return problems


def zone_problems(
    positions: Sequence[Sequence[float]], boundary: Sequence[Sequence[float]]
) -> list[str]:
    """A plan must lie in the zone: every vertex within PLAN_MARGIN_M of the zone's bounding
    box, and the plan touching the zone (a vertex inside it, or the zone's vertices inside an
    area drawn around it)."""
    lons = [p[0] for p in boundary]
    lats = [p[1] for p in boundary]
    dlat = math.degrees(PLAN_MARGIN_M / EARTH_RADIUS_M)
    dlon = dlat / math.cos(math.radians(max(abs(min(lats)), abs(max(lats)))))
    for lon, lat, *_ in positions:
        if not (
            min(lons) - dlon <= lon <= max(lons) + dlon
            and min(lats) - dlat <= lat <= max(lats) + dlat
        ):
            return [
                f"the vertex ({lon}, {lat}) lies more than {PLAN_MARGIN_M:.0f} m outside the zone"
            ]
    ring = [(p[0], p[1]) for p in positions]
    if any(point_in_polygon(lon, lat, boundary) for lon, lat in ring):
        return []
    if len(ring) >= 4 and any(point_in_polygon(lon, lat, ring) for lon, lat, *_ in boundary):
        return []
    return ["the plan has no vertex inside the zone"]
