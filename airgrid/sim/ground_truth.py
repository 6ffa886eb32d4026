"""The twin's ground truth: the things in the zone a drone's camera could see, and when.

Each event is one scenario of the catalogue at one place, from a start to an end. Pure and
seeded: the same reference data, seed and window give the same events. The model (its numbers
are stated in docs/twin.md, "Ground truth and what the cameras see"):

- **Families.** A scenario's family follows the catalogue's own merge window, which says how
  long sightings of one thing keep coming: `transient` (window ≤ 30 min: smoke, a flame, an
  accident, a person collapsed), `hours` (≤ 1 h: parking, a blocked lane, site dust) and
  `lasting` (longer: dumping, spoil, bins, discoloured water). Each family has a zone-wide
  rate per hour, shared equally by its scenarios, and a mix of short and long durations.
- **Durations.** Short: uniform over [5, 30) min. Long: 30 min plus an exponential tail of the
  family's mean, cut at the family's cap.
- **Places.** With PLAN_PLACE_SHARE, uniformly in a cell of an inspection plan owned by one of
  the scenario's departments (the departments drew their plans where their things happen);
  otherwise, and for a scenario none of whose departments has a plan, uniformly in the zone.
  Within a cell the place is uniform over the cell's square, kept inside the zone boundary.
- **Stationary start.** Events that started before the window, up to the longest cap, and are
  still going at its start are included, so a run starts with the city as it is, not empty.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from airgrid.freshness import FreshnessGrid, PlanArea
from airgrid.geo import LocalProjection, point_in_polygon
from airgrid.reference import ReferenceData, ScenarioSpec

MINUTE_MS = 60_000
LONG_EVENT_MS = 30 * MINUTE_MS
"""Recall counts events that last longer than this."""
SHORT_MIN_MS = 5 * MINUTE_MS
PLAN_PLACE_SHARE = 0.6
GRID_CELL_M = 250.0


@dataclass(frozen=True)
class Family:
    """How often a family of scenarios happens in the zone and how long its events last."""

    name: str
    max_merge_window_s: int
    """Scenarios whose merge window is at most this (and above the previous family's)."""
    per_hour: float
    """Events per hour over the whole zone, all the family's scenarios together."""
    short_share: float
    """Share of events lasting 5–30 min; the rest last longer than 30 min."""
    long_tail_mean_min: float
    """Mean of the exponential time a long event lasts beyond 30 min."""
    long_cap_min: float
    """No event lasts longer than this."""


FAMILIES: tuple[Family, ...] = (
    Family("transient", 1800, per_hour=6.0, short_share=0.7, long_tail_mean_min=30.0,
           long_cap_min=240.0),
    Family("hours", 3600, per_hour=30.0, short_share=0.4, long_tail_mean_min=60.0,
           long_cap_min=480.0),
    Family("lasting", 2**62, per_hour=40.0, short_share=0.1, long_tail_mean_min=180.0,
           long_cap_min=720.0),
)  # fmt: skip


@dataclass(frozen=True)
class GroundEvent:
    """One thing to be seen: a scenario at a place, from start_ms until end_ms (exclusive)."""

    id: str
    scenario: str
    family: str
    lon: float
    lat: float
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def is_long(self) -> bool:
        return self.duration_ms > LONG_EVENT_MS

    def active_at(self, now_ms: int) -> bool:
        return self.start_ms <= now_ms < self.end_ms


def family_of(scenario: ScenarioSpec, families: Sequence[Family] = FAMILIES) -> Family:
    for family in families:
        if scenario.merge_window_s <= family.max_merge_window_s:
            return family
    return families[-1]


def draw_duration_ms(family: Family, rng: random.Random) -> int:
    """Short: uniform over [5, 30) min; long: 30 min plus Exp(mean), at most the cap."""
    if rng.random() < family.short_share:
        return round(rng.uniform(SHORT_MIN_MS, LONG_EVENT_MS - 1000))
    tail = rng.expovariate(1.0 / (family.long_tail_mean_min * MINUTE_MS))
    return round(min(LONG_EVENT_MS + 1000 + tail, family.long_cap_min * MINUTE_MS))


class Places:
    """Where events happen: the zone's coverage cells, and which of them each department's
    plans hold."""

    def __init__(self, reference: ReferenceData, cell_m: float = GRID_CELL_M) -> None:
        self.boundary = reference.zone.boundary
        self.grid = FreshnessGrid(
            self.boundary,
            LocalProjection(*reference.zone.centre),
            cell_m=cell_m,
            timezone=ZoneInfo("UTC"),
        )
        self.cell_m = cell_m
        by_department: dict[str, list[np.ndarray]] = {}
        for spec in reference.inspection_plans:
            mask = self.grid.cells_of(PlanArea.from_spec(spec))
            by_department.setdefault(spec.department, []).append(np.flatnonzero(mask))
        self.plan_cells = {d: tuple(cells) for d, cells in sorted(by_department.items())}

    def draw(self, scenario: ScenarioSpec, rng: random.Random) -> tuple[float, float]:
        plans = [c for d in scenario.departments for c in self.plan_cells.get(d, ()) if c.size]
        if plans and rng.random() < PLAN_PLACE_SHARE:
            cells = plans[rng.randrange(len(plans))]
            cell = int(cells[rng.randrange(cells.size)])
        else:
            cell = rng.randrange(len(self.grid))
        x, y = (float(v) for v in self.grid.xy[cell])
        half = self.cell_m / 2.0
        for _ in range(8):
            lon, lat = self.grid.projection.to_lon_lat(
                x + rng.uniform(-half, half), y + rng.uniform(-half, half)
            )
            if point_in_polygon(lon, lat, self.boundary):
                return lon, lat
        return self.grid.cell_centre(cell)  # inside: grid cells are kept by their centres


def ground_truth(
    reference: ReferenceData,
    *,
    seed: int,
    start_ms: int,
    duration_s: float,
    families: Sequence[Family] = FAMILIES,
    places: Places | None = None,
) -> tuple[GroundEvent, ...]:
    """The events active at some time in [start_ms, start_ms + duration_s), by start time.

    Each family is a homogeneous Poisson process over the window and the longest cap before
    it; each event's scenario is uniform within its family."""
    places = places or Places(reference)
    by_family: dict[str, list[ScenarioSpec]] = {}
    for spec in sorted(reference.scenarios, key=lambda s: s.code):
        by_family.setdefault(family_of(spec, families).name, []).append(spec)
    end_ms = start_ms + round(duration_s * 1000)
    events: list[GroundEvent] = []
    for index, family in enumerate(families):
        scenarios = by_family.get(family.name)
        if not scenarios or family.per_hour <= 0:
            continue
        rng = random.Random(f"ground-truth:{seed}:{index}")
        t = float(start_ms) - family.long_cap_min * MINUTE_MS
        rate_per_ms = family.per_hour / 3_600_000.0
        while True:
            t += rng.expovariate(rate_per_ms)
            if t >= end_ms:
                break
            scenario = scenarios[rng.randrange(len(scenarios))]
            duration = draw_duration_ms(family, rng)
            lon, lat = places.draw(scenario, rng)
            begins = math.floor(t)
            if begins + duration <= start_ms:
                continue
            events.append(
                GroundEvent("", scenario.code, family.name, lon, lat, begins, begins + duration)
            )
    events.sort(key=lambda e: (e.start_ms, e.scenario, e.lon, e.lat))
    return tuple(
        GroundEvent(f"ev-{seed}-{n:06d}", e.scenario, e.family, e.lon, e.lat, e.start_ms, e.end_ms)
        for n, e in enumerate(events, start=1)
    )


@dataclass(frozen=True)
class Recall:
    """Of the events over 30 min whose whole life lies in a window, how many produced a case
    before they ended."""

    counted: int
    caught: int
    time_to_case_s: tuple[float, ...]
    """Per event caught: its start to its first case, by event start."""

    @property
    def share(self) -> float | None:
        return self.caught / self.counted if self.counted else None


def recall(
    events: Sequence[GroundEvent], first_case_ms: Mapping[str, int], *, start_ms: int, end_ms: int
) -> Recall:
    """first_case_ms: event id → time of the event's first detection that opened or joined a
    case. An event counts when it lasts over 30 min and lies in [start_ms, end_ms]; it is
    caught when that time is before its end (a case after the end is not recall)."""
    counted = [e for e in events if e.is_long and e.start_ms >= start_ms and e.end_ms <= end_ms]
    caught = [e for e in counted if e.id in first_case_ms and first_case_ms[e.id] < e.end_ms]
    return Recall(
        counted=len(counted),
        caught=len(caught),
        time_to_case_s=tuple(
            max(0, first_case_ms[e.id] - e.start_ms) / 1000.0
            for e in sorted(caught, key=lambda e: (e.start_ms, e.id))
        ),
    )
