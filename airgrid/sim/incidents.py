"""Seeded incident generator: who reports what, where, as the body of POST /v1/incidents.

Each incident comes from a department, with a type from the catalogue that lists that
department, at a random point inside the zone and outside every no-fly zone. The same seed
gives the same sequence, so a load run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airgrid.geo import point_in_polygon
from airgrid.reference import DepartmentSpec, IncidentType, ReferenceData

# Short on purpose: drones come back and the demo keeps cycling through the fleet.
DEMO_ON_SCENE_SECONDS = 120
_MAX_POINT_TRIES = 10_000
# Geofence kinds no drone may enter; an altitude limit still lets drones work below it.
NO_FLY_KINDS = frozenset({"no-fly", "temporary"})

Ring = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class GeneratedIncident:
    """One incident to post, on behalf of `department`."""

    department: str
    body: dict[str, Any] = field(hash=False)

    @property
    def point(self) -> tuple[float, float]:
        lon, lat = self.body["location"]["coordinates"]
        return float(lon), float(lat)


class IncidentGenerator:
    """Draws incidents from the reference zone and catalogue with its own seeded random."""

    def __init__(
        self,
        reference: ReferenceData,
        *,
        seed: int = 7,
        on_scene_seconds: int = DEMO_ON_SCENE_SECONDS,
        departments: Sequence[str] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.on_scene_seconds = on_scene_seconds
        self.boundary: Ring = reference.zone.boundary
        self.no_fly: list[Ring] = [g.ring for g in reference.geofences if g.kind in NO_FLY_KINDS]
        self.types: tuple[IncidentType, ...] = tuple(reference.incident_types)
        if not self.types:
            raise ValueError("the reference data has no incident types to draw from")
        wanted = set(departments) if departments is not None else None
        self.departments: tuple[DepartmentSpec, ...] = tuple(
            d for d in reference.departments if wanted is None or d.code in wanted
        )
        if not self.departments:
            raise ValueError("no department to report incidents from")
        lons = [p[0] for p in self.boundary]
        lats = [p[1] for p in self.boundary]
        self._bbox = (min(lons), min(lats), max(lons), max(lats))

    def interval_s(self, rate_per_min: float) -> float:
        """Seconds until the next incident; a fixed rate for now (the seam for Poisson load)."""
        return 60.0 / rate_per_min

    def random_point(self) -> tuple[float, float]:
        """A uniform point in the zone's bounding box, inside the zone and no no-fly zone."""
        west, south, east, north = self._bbox
        for _ in range(_MAX_POINT_TRIES):
            lon = self.rng.uniform(west, east)
            lat = self.rng.uniform(south, north)
            if not point_in_polygon(lon, lat, self.boundary):
                continue
            if any(point_in_polygon(lon, lat, ring) for ring in self.no_fly):
                continue
            return round(lon, 6), round(lat, 6)
        raise ValueError("could not draw a point inside the zone; is its boundary a valid ring?")

    def next(self) -> GeneratedIncident:
        department = self.rng.choice(self.departments)
        own = [t for t in self.types if department.code in t.departments]
        kind = self.rng.choice(own or list(self.types))
        lon, lat = self.random_point()
        body: dict[str, Any] = {
            "type": kind.code,
            "priority": kind.default_priority,
            "location": {"type": "Point", "coordinates": [lon, lat]},
            "required_capabilities": list(kind.required_capabilities),
            "drones_needed": 1,
            "on_scene_seconds": self.on_scene_seconds,
            "description": f"simulated: {kind.name} reported by {department.name_en}",
        }
        return GeneratedIncident(department=department.code, body=body)
