"""What the twin's cameras see of the ground truth: a drone at inspection altitude whose camera
footprint covers an active event's place detects that event's scenario.

The footprint is freshness's (`airgrid.freshness.footprint_radius_m`: the disc of radius
altitude × tan(fov / 2) under the drone, 30–150 m above ground only), measured in the same
local projection. A drone detects one event at most once per REPEAT_S; the confidence is
0.5 + 0.49 × Beta(4, 2) (mean 0.83, within 0.5 … 0.99), drawn from the caller's seeded
generator. The detector never misses a thing in its footprint and never sees what is not
there: false negatives and false alarms are not modelled.

`sightings` is pure given its generator: drone fixes, events, time and the last detection of
each (drone, event) in; the new sightings out. `Seeing` keeps the last detections.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from airgrid.freshness import footprint_radius_m
from airgrid.geo import LocalProjection
from airgrid.sim.fleet import Fleet
from airgrid.sim.ground_truth import GroundEvent
from airgrid.sim.physics import DOCKED

REPEAT_S = 60.0
"""A drone detects one event at most this often."""


@dataclass(frozen=True)
class CameraFix:
    """Where a drone's camera is now."""

    drone_id: str
    lon: float
    lat: float
    alt_m: float
    fov_deg: float
    mission_id: str = ""


@dataclass(frozen=True)
class Seen:
    """One detection of a ground-truth event by one drone."""

    event: GroundEvent
    drone_id: str
    mission_id: str
    observed_ms: int
    confidence: float


class EventIndex:
    """The events by start time, with their places in projected metres."""

    def __init__(self, events: Iterable[GroundEvent], projection: LocalProjection) -> None:
        self.events = tuple(sorted(events, key=lambda e: (e.start_ms, e.id)))
        self.projection = projection
        xy = [projection.to_xy(e.lon, e.lat) for e in self.events]
        self.x = np.array([p[0] for p in xy], dtype=np.float64)
        self.y = np.array([p[1] for p in xy], dtype=np.float64)
        self.start = np.array([e.start_ms for e in self.events], dtype=np.int64)
        self.end = np.array([e.end_ms for e in self.events], dtype=np.int64)

    def active(self, now_ms: int) -> np.ndarray:
        """Indices of the events going on at now_ms."""
        started = int(np.searchsorted(self.start, now_ms, side="right"))
        return np.flatnonzero(self.end[:started] > now_ms)


def in_view(fixes: Sequence[CameraFix], index: EventIndex, now_ms: int) -> list[tuple[int, int]]:
    """(fix position, event position) of every active event inside a fix's footprint, by fix
    then event."""
    radii = np.array([footprint_radius_m(f.alt_m, f.fov_deg) for f in fixes], dtype=np.float64)
    looking = np.flatnonzero(radii > 0)
    if looking.size == 0:
        return []
    active = index.active(now_ms)
    if active.size == 0:
        return []
    xy = np.array([index.projection.to_xy(fixes[int(i)].lon, fixes[int(i)].lat) for i in looking])
    dx = xy[:, 0:1] - index.x[active][None, :]
    dy = xy[:, 1:2] - index.y[active][None, :]
    inside = dx * dx + dy * dy <= (radii[looking] ** 2)[:, None]
    rows, cols = np.nonzero(inside)
    return [(int(looking[r]), int(active[c])) for r, c in zip(rows, cols, strict=True)]


def confidence(rng: random.Random) -> float:
    return round(0.5 + 0.49 * rng.betavariate(4.0, 2.0), 3)


def sightings(
    fixes: Sequence[CameraFix],
    index: EventIndex,
    now_ms: int,
    rng: random.Random,
    last_seen: Mapping[tuple[str, str], int],
    repeat_s: float = REPEAT_S,
) -> list[Seen]:
    """The detections made at now_ms: each (drone, event) in view whose last detection is
    REPEAT_S or more ago (or never)."""
    repeat_ms = round(repeat_s * 1000)
    found: list[Seen] = []
    for f, e in in_view(fixes, index, now_ms):
        fix, event = fixes[f], index.events[e]
        last = last_seen.get((fix.drone_id, event.id))
        if last is not None and now_ms - last < repeat_ms:
            continue
        found.append(Seen(event, fix.drone_id, fix.mission_id, now_ms, confidence(rng)))
    return found


class Seeing:
    """`sightings` over time: keeps each (drone, event)'s last detection, forgetting those of
    ended events."""

    def __init__(
        self, events: Iterable[GroundEvent], projection: LocalProjection, *, seed: int
    ) -> None:
        self.index = EventIndex(events, projection)
        self.rng = random.Random(f"seeing:{seed}")
        self.last_seen: dict[tuple[str, str], int] = {}
        self._pruned_ms = 0

    def extend(self, events: Iterable[GroundEvent], now_ms: int) -> None:
        """Add events (a later window of ground truth), dropping those ended by now_ms."""
        going_on = [e for e in self.index.events if e.end_ms > now_ms]
        self.index = EventIndex([*going_on, *events], self.index.projection)

    def see(self, fixes: Sequence[CameraFix], now_ms: int) -> list[Seen]:
        found = sightings(fixes, self.index, now_ms, self.rng, self.last_seen)
        for seen in found:
            self.last_seen[(seen.drone_id, seen.event.id)] = now_ms
        if now_ms - self._pruned_ms >= 600_000:
            self._pruned_ms = now_ms
            horizon = now_ms - round(REPEAT_S * 1000)
            self.last_seen = {k: t for k, t in self.last_seen.items() if t >= horizon}
        return found


def camera_fixes(fleet: Fleet) -> list[CameraFix]:
    """The fleet's airborne drones whose link is up (a silent drone's gateway hears nothing),
    in the fleet's order."""
    return [
        CameraFix(drone_id, d.lon, d.lat, d.alt_m, d.spec.camera_fov_deg, d.mission_id)
        for drone_id, d in fleet.drones.items()
        if d.mode != DOCKED and not fleet.link_lost(drone_id)
    ]
