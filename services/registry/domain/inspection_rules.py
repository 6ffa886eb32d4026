"""Inspection plan rules: revisit intervals, daily active windows, corridor widths and where a
plan's geometry may lie. Pure: no clock, no I/O; every check returns sentences to act on."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

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
MINUTES_PER_DAY = 24 * 60

CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def clock_minutes(text: str) -> int:
    """ "HH:MM" (00:00 … 23:59) as minutes after local midnight; ValueError otherwise."""
    match = CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a time of day as HH:MM, 00:00 … 23:59")
    return int(match.group(1)) * 60 + int(match.group(2))


@dataclass(frozen=True)
class ActiveWindow:
    """A daily local-time range [start, end): the plan wants revisits only inside it. An end
    before the start runs past midnight (22:00–02:00); start equal to end never opens."""

    start_minute: int
    end_minute: int

    @classmethod
    def parse(cls, start: str, end: str) -> ActiveWindow:
        window = cls(clock_minutes(start), clock_minutes(end))
        if window.start_minute == window.end_minute:
            raise ValueError(
                f"the window {start}–{end} never opens: start and end are equal; for all day "
                "send no windows"
            )
        return window

    def contains(self, minute_of_day: int) -> bool:
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute

    @property
    def open_minutes(self) -> int:
        return (self.end_minute - self.start_minute) % MINUTES_PER_DAY


def is_active_at(windows: Sequence[ActiveWindow], moment: datetime, timezone: ZoneInfo) -> bool:
    """Whether a plan wants revisits at `moment` (aware): no windows means always."""
    if moment.tzinfo is None:
        raise ValueError("moment needs a time zone")
    if not windows:
        return True
    local = moment.astimezone(timezone)
    minute = local.hour * 60 + local.minute
    return any(w.contains(minute) for w in windows)


def open_minutes_per_day(windows: Sequence[ActiveWindow]) -> int:
    """Minutes of the day inside at least one window (overlaps counted once)."""
    if not windows:
        return MINUTES_PER_DAY
    return sum(1 for m in range(MINUTES_PER_DAY) if any(w.contains(m) for w in windows))


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
