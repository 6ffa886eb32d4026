"""What a simulated drone's onboard detector reports now and then while airborne: a
scenario of the catalogue, a confidence, and a fake image with its SHA-256. Seeded, so a run
is repeatable; the rate is per minute of flight on the simulated clock."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.reference import load_reference


@dataclass(frozen=True)
class Sighting:
    image_index: int
    scenario: str
    confidence: float
    media_sha256: str
    media_name: str
    attributes: dict[str, str]


def catalogue_codes() -> tuple[str, ...]:
    """The scenario codes of the reference zone's catalogue."""
    return tuple(spec.code for spec in load_reference().scenarios)


class SightingSource:
    """`next(flight_s)` gives the sighting due in `flight_s` seconds of flight, if any: the
    sightings are a Poisson process of `per_minute`, so the gaps vary as a detector's do."""

    def __init__(self, *, per_minute: float, seed: int, scenarios: Sequence[str]) -> None:
        self.per_minute = per_minute
        self.scenarios = tuple(scenarios)
        self.random = random.Random(seed)
        self.image_index = 0

    def next(self, flight_s: float) -> Sighting | None:
        if self.per_minute <= 0 or not self.scenarios or flight_s <= 0:
            return None
        chance = 1.0 - math.exp(-self.per_minute * flight_s / 60.0)
        if self.random.random() >= chance:
            return None
        self.image_index += 1
        blob = self.random.randbytes(256)
        return Sighting(
            image_index=self.image_index,
            scenario=self.random.choice(self.scenarios),
            confidence=round(self.random.uniform(0.55, 0.99), 3),
            media_sha256=hashlib.sha256(blob).hexdigest(),
            media_name=f"DJI_{self.image_index:04d}.JPG",
            attributes={"model": "sim-detector-1", "camera": "wide"},
        )
