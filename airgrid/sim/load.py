"""Incident load profiles: per-department Poisson rates by hour of day, hot spots, priority
mix and duplicate reports across departments. Pure and seeded: the same seed, profile and
start hour give the same incidents at the same offsets.

Rates are totals for the zone at an hour whose factor is 1.0; each department takes its
share, and the hour-of-day factor (quiet at night, peaks at the commutes) scales them all.
Routine inspection is not generated here: the dispatch core flies it underneath on idle
drones (AIRGRID_PATROL_ENABLED).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from airgrid.geo import LocalProjection, point_in_polygon
from airgrid.reference import ReferenceData
from airgrid.sim.incidents import DEMO_ON_SCENE_SECONDS, NO_FLY_KINDS, GeneratedIncident

# Incidents per minute over the whole zone at an hour factor of 1.0.
PROFILES: dict[str, float] = {"nominal": 2.0, "busy": 6.0, "surge": 20.0}

# Hour-of-day factors (local time, 0..23), mean 1.0: night lull, commute and afternoon peaks.
_HOUR_SHAPE: tuple[float, ...] = (
    0.45, 0.35, 0.3, 0.3, 0.35, 0.5, 0.8, 1.25, 1.5, 1.3, 1.2, 1.2,
    1.25, 1.2, 1.2, 1.25, 1.35, 1.55, 1.5, 1.3, 1.1, 0.9, 0.7, 0.55,
)  # fmt: skip
HOUR_FACTORS: tuple[float, ...] = tuple(24 * f / sum(_HOUR_SHAPE) for f in _HOUR_SHAPE)

# Share of the incidents each department reports.
DEPARTMENT_WEIGHTS: dict[str, float] = {
    "fire": 0.12, "traffic": 0.18, "environment": 0.07, "emergency": 0.08, "police": 0.16,
    "urban": 0.12, "water": 0.06, "resources": 0.04, "construction": 0.05, "parks": 0.05,
    "health": 0.07,
}  # fmt: skip

# Priority mix (1 = life-safety ... 4 = routine) drawn for every report.
PRIORITY_MIX: dict[int, float] = {1: 0.15, 2: 0.30, 3: 0.35, 4: 0.20}

HOT_SPOTS = 6  # dense areas (markets, junctions, industrial parks) drawn from the seed
HOT_SPOT_SHARE = 0.45  # share of incidents that fall near a hot spot
HOT_SPOT_SIGMA_M = 1200.0
DUPLICATE_SHARE = 0.08  # share of incidents that a second department reports too
DUPLICATE_DELAY_S = (5.0, 90.0)
DUPLICATE_SCATTER_M = 120.0
_MAX_TRIES = 10_000


def hour_factor(hour: float) -> float:
    """The hour-of-day factor, interpolated between whole hours."""
    h = hour % 24.0
    i = int(h)
    frac = h - i
    return HOUR_FACTORS[i] * (1 - frac) + HOUR_FACTORS[(i + 1) % 24] * frac


@dataclass(frozen=True)
class ScheduledIncident:
    """An incident to post at offset_s seconds into the run."""

    offset_s: float
    incident: GeneratedIncident
    duplicate_of: int | None = None  # sequence number of the first report of the same event
    seq: int = 0


def _shifted(event: ScheduledIncident, origin: float) -> ScheduledIncident:
    return replace(event, offset_s=round(event.offset_s - origin, 6)) if origin else event


class LoadModel:
    """Draws the incident schedule of a profile: a non-homogeneous Poisson process (thinning)
    over departments, with hot spots, a priority mix and duplicate reports."""

    def __init__(
        self,
        reference: ReferenceData,
        *,
        profile: str = "nominal",
        rate_per_min: float | None = None,
        seed: int = 7,
        start_hour: float = 10.0,
        departments: Sequence[str] | None = None,
        on_scene_seconds: int = DEMO_ON_SCENE_SECONDS,
    ) -> None:
        if rate_per_min is None:
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
            rate_per_min = PROFILES[profile]
        if rate_per_min < 0:
            raise ValueError("the incident rate must not be negative")
        self.rate_per_min = rate_per_min
        self.start_hour = start_hour
        self.on_scene_seconds = on_scene_seconds
        self.rng = random.Random(seed)
        self.boundary = reference.zone.boundary
        self.no_fly = [g.ring for g in reference.geofences if g.kind in NO_FLY_KINDS]
        self.projection = LocalProjection(*reference.zone.centre)
        wanted = set(departments) if departments is not None else None
        self.departments = [
            d.code for d in reference.departments if wanted is None or d.code in wanted
        ]
        if not self.departments:
            raise ValueError("no department to report incidents from")
        self.weights = [DEPARTMENT_WEIGHTS.get(code, 0.05) for code in self.departments]
        self.types = tuple(reference.incident_types)
        if not self.types:
            raise ValueError("the reference data has no incident types to draw from")
        lons = [p[0] for p in self.boundary]
        lats = [p[1] for p in self.boundary]
        self._bbox = (min(lons), min(lats), max(lons), max(lats))
        self.hot_spots = [self._uniform_point() for _ in range(HOT_SPOTS)]
        self._seq = 0

    def rate_at(self, offset_s: float) -> float:
        """Incidents per second at offset_s into the run."""
        return self.rate_per_min / 60.0 * hour_factor(self.start_hour + offset_s / 3600.0)

    def events(self) -> Iterator[ScheduledIncident]:
        """The incidents of an endless run, in time order (duplicates included).

        The run starts at an arrival: the city's incidents are already flowing when the twin
        starts, so the first report comes at offset 0, not after a random first wait (the
        process seen from one of its arrivals is the same Poisson process)."""
        peak = self.rate_per_min / 60.0 * max(HOUR_FACTORS)
        if peak <= 0:
            return
        later: list[tuple[float, int, ScheduledIncident]] = []
        t = 0.0
        origin: float | None = None
        while True:
            t += self.rng.expovariate(peak)
            while later and later[0][0] <= t:
                yield _shifted(heapq.heappop(later)[2], origin or 0.0)
            if self.rng.random() * peak > self.rate_at(t):
                continue  # thinning: fewer incidents at quiet hours
            first = self._draw(t)
            origin = t if origin is None else origin
            yield _shifted(first, origin)
            if self.rng.random() < DUPLICATE_SHARE:
                again = self._duplicate(first)
                heapq.heappush(later, (again.offset_s, again.seq, again))

    def schedule(self, duration_s: float) -> list[ScheduledIncident]:
        """Every incident of a run of duration_s seconds, in time order."""
        return list(itertools.takewhile(lambda e: e.offset_s < duration_s, self.events()))

    # -- draws -----------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _draw(self, offset_s: float) -> ScheduledIncident:
        department = self.rng.choices(self.departments, weights=self.weights)[0]
        own = [t for t in self.types if department in t.departments] or list(self.types)
        kind = self.rng.choice(own)
        priority = self.rng.choices(list(PRIORITY_MIX), weights=list(PRIORITY_MIX.values()))[0]
        # A type's default priority bounds how routine it can be (a fire is never priority 4).
        priority = min(priority, max(kind.default_priority, 1) + 1)
        lon, lat = self.scene_point(self.rng)
        body = self._body(kind.code, priority, list(kind.required_capabilities), lon, lat)
        body["description"] = f"simulated: {kind.name} reported by {department}"
        return ScheduledIncident(
            offset_s, GeneratedIncident(department, body), None, self._next_seq()
        )

    def _duplicate(self, first: ScheduledIncident) -> ScheduledIncident:
        others = [d for d in self.departments if d != first.incident.department]
        department = self.rng.choice(others) if others else first.incident.department
        lon, lat = self._near(first.incident.point, DUPLICATE_SCATTER_M)
        body = dict(first.incident.body)
        body["location"] = {"type": "Point", "coordinates": [lon, lat]}
        body["description"] = f"simulated: same event reported again by {department}"
        delay = self.rng.uniform(*DUPLICATE_DELAY_S)
        return ScheduledIncident(
            first.offset_s + delay,
            GeneratedIncident(department, body),
            first.seq,
            self._next_seq(),
        )

    def scene_point(self, rng: random.Random) -> tuple[float, float]:
        """Where an incident happens: near one of the hot spots (HOT_SPOT_SHARE of them) or
        anywhere in the zone, drawn with rng. The schedule passes its own; the twin's
        mid-operation start passes another, so it draws the city's earlier incidents from the
        same places without changing the schedule."""
        if rng.random() < HOT_SPOT_SHARE:
            return self._near(rng.choice(self.hot_spots), HOT_SPOT_SIGMA_M, rng)
        return self._uniform_point(rng)

    def allowed(self, lon: float, lat: float) -> bool:
        """Inside the zone and outside every no-fly zone."""
        return self._allowed(lon, lat)

    def _body(
        self, kind: str, priority: int, capabilities: list[str], lon: float, lat: float
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "priority": priority,
            "location": {"type": "Point", "coordinates": [lon, lat]},
            "required_capabilities": capabilities,
            "drones_needed": 1,
            "on_scene_seconds": self.on_scene_seconds,
        }

    def _allowed(self, lon: float, lat: float) -> bool:
        if not point_in_polygon(lon, lat, self.boundary):
            return False
        return not any(point_in_polygon(lon, lat, ring) for ring in self.no_fly)

    def _uniform_point(self, rng: random.Random | None = None) -> tuple[float, float]:
        rng = rng or self.rng
        west, south, east, north = self._bbox
        for _ in range(_MAX_TRIES):
            lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            if self._allowed(lon, lat):
                return round(lon, 6), round(lat, 6)
        raise ValueError("could not draw a point inside the zone; is its boundary a valid ring?")

    def _near(
        self, centre: tuple[float, float], sigma_m: float, rng: random.Random | None = None
    ) -> tuple[float, float]:
        rng = rng or self.rng
        cx, cy = self.projection.to_xy(*centre)
        for _ in range(100):
            r = abs(rng.gauss(0.0, sigma_m))
            a = rng.uniform(0.0, 2 * math.pi)
            lon, lat = self.projection.to_lon_lat(cx + r * math.cos(a), cy + r * math.sin(a))
            if self._allowed(lon, lat):
                return round(lon, 6), round(lat, 6)
        return self._uniform_point(rng)
