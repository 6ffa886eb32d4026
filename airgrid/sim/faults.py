"""Configurable faults and weather for the twin: link loss, battery faults, nests going
offline and gusts above a nest's hold threshold, drawn from a seed as a schedule.

Levels: `none`, `light` (a handful an hour) and `heavy` (four times that). Every fault has a
duration and clears by itself. Pure: `Fleet` applies the events as the run reaches them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

LINK_LOSS = "link_loss"
BATTERY = "battery_fault"
NEST_OFFLINE = "nest_offline"
GUST = "gust"

# Events per hour at the `light` level.
LIGHT_PER_HOUR: dict[str, float] = {LINK_LOSS: 8.0, BATTERY: 2.0, NEST_OFFLINE: 1.0, GUST: 2.0}
LEVELS: dict[str, float] = {"none": 0.0, "light": 1.0, "heavy": 4.0}
DURATION_S: dict[str, tuple[float, float]] = {
    LINK_LOSS: (20.0, 90.0),  # past the 15 s link-lost threshold: the drone is replaced
    BATTERY: (300.0, 900.0),
    NEST_OFFLINE: (300.0, 900.0),
    GUST: (120.0, 600.0),
}
GUST_OVER_HOLD_MPS = (1.0, 6.0)


@dataclass(frozen=True)
class FaultEvent:
    offset_s: float
    kind: str
    target: str  # drone id (link loss, battery) or nest id (offline, gust)
    duration_s: float
    wind_mps: float = 0.0  # gusts: the wind at the nest while it lasts


@dataclass(frozen=True)
class Weather:
    """The zone's prevailing wind, drawn from the seed: calm to a fresh breeze."""

    wind_mps: float
    from_deg: float


def weather_of(seed: int) -> Weather:
    rng = random.Random(f"weather-{seed}")
    return Weather(round(rng.uniform(2.0, 7.0), 1), round(rng.uniform(0.0, 360.0), 0))


def fault_schedule(
    *,
    level: str,
    duration_s: float,
    drone_ids: Sequence[str],
    nest_holds: dict[str, float],
    seed: int,
) -> list[FaultEvent]:
    """The faults of a run, in time order; empty at level `none`."""
    if level not in LEVELS:
        raise ValueError(f"unknown fault level {level!r}; choose one of {sorted(LEVELS)}")
    scale = LEVELS[level]
    rng = random.Random(f"faults-{seed}")
    events: list[FaultEvent] = []
    drones = sorted(drone_ids)
    nests = sorted(nest_holds)
    for kind, per_hour in sorted(LIGHT_PER_HOUR.items()):
        rate = per_hour * scale / 3600.0
        targets = drones if kind in (LINK_LOSS, BATTERY) else nests
        if rate <= 0 or not targets:
            continue
        t = rng.expovariate(rate)
        while t < duration_s:
            target = rng.choice(targets)
            lasting = rng.uniform(*DURATION_S[kind])
            wind = 0.0
            if kind == GUST:
                wind = round(nest_holds[target] + rng.uniform(*GUST_OVER_HOLD_MPS), 1)
            events.append(FaultEvent(round(t, 3), kind, target, round(lasting, 1), wind))
            t += rng.expovariate(rate)
    events.sort(key=lambda e: (e.offset_s, e.kind, e.target))
    return events
