"""A no-fly zone: a polygon and the time window in which drones may not enter it.

Dispatch routes around the zones in force and telemetry raises a breach for a drone inside one;
both ask the same zone, so a drone is never routed into a zone that telemetry still enforces,
nor flagged in one that dispatch already treats as lifted. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.geo import point_in_polygon

UNBOUNDED_MS = 0
"""A window bound of 0 means no bound: in force since always, or with no end."""


@dataclass(frozen=True)
class NoFlyZone:
    """A no-fly polygon (exterior ring of (lon, lat)) in force over [active_from_ms,
    active_until_ms): the start instant is inside the window, the end instant is not, so a
    zone lifted at T and one starting at T never both apply at T."""

    id: str
    ring: Sequence[tuple[float, float]]
    active_from_ms: int = UNBOUNDED_MS
    active_until_ms: int = UNBOUNDED_MS

    def __post_init__(self) -> None:
        # A tuple of tuples: equal zones compare and hash equal whatever sequence built them.
        object.__setattr__(self, "ring", tuple((float(p[0]), float(p[1])) for p in self.ring))

    def active_at(self, now_ms: int) -> bool:
        """Is the zone in force at now_ms (half-open window)?"""
        if self.active_from_ms != UNBOUNDED_MS and now_ms < self.active_from_ms:
            return False
        return self.active_until_ms == UNBOUNDED_MS or now_ms < self.active_until_ms

    def contains(self, lon: float, lat: float) -> bool:
        """Does the polygon contain the point (even-odd rule)?"""
        return point_in_polygon(lon, lat, self.ring)

    # The telemetry rules name the id and the window check this way; same value, same rule.
    @property
    def zone_id(self) -> str:
        return self.id

    def is_active(self, at_ms: int) -> bool:
        return self.active_at(at_ms)
