"""The accelerated twin's inspection half: the ground truth, what the cameras see of it, the
cases the detections make (telemetry's pure merge rule), recall, and the freshness share.

- **Seen.** Each clock step, the fleet's airborne drones (link up) see the active events in
  their footprints (`airgrid.sim.seeing`); each detection is merged into cases by
  `services.telemetry.domain.cases.CaseIndex`, as telemetry's case keeper merges it. In one
  process a detection is in a case the step it is made: detection-to-case latency is 0 here
  (the live path adds the HTTP post, the broker and the keeper's batch).
- **Recall.** Over the events whose whole life lies inside the load window and that last
  over 30 min: the share that produced at least one case before they ended. An event
  produced a case when one of its detections opened or joined a case.
- **Time to case.** From an event's start to its first detection, for the long events caught.
- **Freshness.** The overall share of due cells within their interval (`FreshnessGrid.report`
  on the dispatch side's grid, fed by the folded drone states), sampled every simulated
  minute of the load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airgrid.geo import LocalProjection
from airgrid.reference import ReferenceData
from airgrid.sim.fleet import Fleet
from airgrid.sim.ground_truth import ground_truth, recall
from airgrid.sim.seeing import Seeing, camera_fixes
from services.dispatch.patrol_freshness import PatrolFreshness
from services.telemetry.domain.cases import CaseIndex, Sighting

FRESHNESS_EVERY_MS = 60_000
EXPIRE_EVERY_MS = 600_000


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class InspectionTrack:
    """Ground truth, seeing, cases and freshness over one accelerated run."""

    reference: ReferenceData
    seed: int
    start_ms: int
    load_end_ms: int
    freshness: PatrolFreshness | None
    seeing: Seeing = field(init=False)
    cases: CaseIndex = field(init=False)
    first_case_ms: dict[str, int] = field(default_factory=dict)
    """Event id → observed time of its first detection (which opened or joined a case)."""
    detections: int = 0
    cases_opened: int = 0
    freshness_samples: list[tuple[float, float]] = field(default_factory=list)
    _last_sample_ms: int | None = None
    _last_expire_ms: int = 0

    def __post_init__(self) -> None:
        events = ground_truth(
            self.reference,
            seed=self.seed,
            start_ms=self.start_ms,
            duration_s=(self.load_end_ms - self.start_ms) / 1000.0,
        )
        # The freshness grid's projection: the footprint is measured as freshness measures it.
        projection = LocalProjection(*self.reference.zone.centre)
        self.seeing = Seeing(events, projection, seed=self.seed)
        self.cases = CaseIndex({s.code: s for s in self.reference.scenarios})
        self._last_expire_ms = self.start_ms

    def step(self, fleet: Fleet, now_ms: int) -> None:
        for seen in self.seeing.see(camera_fixes(fleet), now_ms):
            event = seen.event
            self.detections += 1
            merged = self.cases.add(
                Sighting(
                    detection_id=f"{event.id}:{seen.drone_id}:{now_ms}",
                    scenario=event.scenario,
                    confidence=seen.confidence,
                    lon=event.lon,
                    lat=event.lat,
                    observed_ms=now_ms,
                    media_uri=f"sim://{seen.drone_id}/{now_ms}.jpg",
                    media_sha256="0" * 64,
                )
            )
            if merged is None:
                continue
            self.cases_opened += merged.opened
            self.first_case_ms.setdefault(event.id, now_ms)
        if now_ms - self._last_expire_ms >= EXPIRE_EVERY_MS:
            self._last_expire_ms = now_ms
            self.cases.expire(now_ms)
        self._sample_freshness(now_ms)

    def _sample_freshness(self, now_ms: int) -> None:
        if self.freshness is None or now_ms > self.load_end_ms or not self.freshness.grid.plans:
            return
        if self._last_sample_ms is not None and now_ms - self._last_sample_ms < FRESHNESS_EVERY_MS:
            return
        self._last_sample_ms = now_ms
        share = self.freshness.grid.report(now_ms).share
        self.freshness_samples.append((round((now_ms - self.start_ms) / 1000.0, 1), share))

    def summary(self) -> dict[str, Any]:
        events = self.seeing.index.events
        in_window = [e for e in events if e.start_ms >= self.start_ms]
        found = recall(events, self.first_case_ms, start_ms=self.start_ms, end_ms=self.load_end_ms)
        to_case = list(found.time_to_case_s)
        shares = [s for _, s in self.freshness_samples]
        half = [s for t, s in self.freshness_samples if t * 1000 >= (
            self.load_end_ms - self.start_ms) / 2]  # fmt: skip
        return {
            "events_total": len(in_window),
            "events_active_at_start": sum(1 for e in events if e.start_ms < self.start_ms),
            "events_over_30_min": sum(1 for e in in_window if e.is_long),
            "events_over_30_min_counted": found.counted,
            "events_over_30_min_caught": found.caught,
            "recall": round(found.share, 4) if found.share is not None else None,
            "events_seen": len(self.first_case_ms),
            "detections": self.detections,
            "cases_opened": self.cases_opened,
            "time_to_case_s": {
                "p50_s": _quantile(to_case, 0.5),
                "p95_s": _quantile(to_case, 0.95),
            },
            "detection_to_case_s": 0.0,
            "freshness": {
                "mean": round(sum(shares) / len(shares), 4) if shares else None,
                "min": round(min(shares), 4) if shares else None,
                "second_half_mean": round(sum(half) / len(half), 4) if half else None,
                "end": round(shares[-1], 4) if shares else None,
                "samples": len(shares),
            },
        }
