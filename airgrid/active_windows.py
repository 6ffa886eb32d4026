"""Daily active windows of inspection plans: when a plan wants its cells seen, in local time.

Pure: the moment and the time zone are inputs. The registry checks windows with these rules
when a plan is written, and freshness reads them to decide which cells are due.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

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


def open_since(
    windows: Sequence[ActiveWindow], moment: datetime, timezone: ZoneInfo
) -> datetime | None:
    """When the open stretch that contains `moment` began: the start of the minute at which
    the plan last turned active, overlapping and back-to-back windows counting as one stretch.

    None when the plan is open all the time (no windows, or windows covering the whole day).
    Raises ValueError when the plan is not active at `moment`; ask is_active_at first.
    """
    if not is_active_at(windows, moment, timezone):
        raise ValueError("the plan is not active at this moment")
    if not windows:
        return None
    start = moment.replace(second=0, microsecond=0)
    for _ in range(MINUTES_PER_DAY):
        before = start - timedelta(minutes=1)
        if not is_active_at(windows, before, timezone):
            return start
        start = before
    return None
