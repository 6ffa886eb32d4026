"""The fleet as the accept use case sees it: every registered drone's capabilities and the
no-fly zones in force, from the worker's live registry view or, until that has caught up,
from the packaged reference data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

from airgrid.nofly import NoFlyZone
from airgrid.reference import ReferenceData
from services.dispatch.core_owner import CoreOwner

Ring = Sequence[tuple[float, float]]
NO_FLY_KINDS = ("no-fly", "temporary")


class Fleet(Protocol):
    def capabilities(self) -> list[frozenset[str]]:
        """Capabilities of every registered drone, whatever its status today (it may
        return)."""
        ...

    def no_fly_zones(self, now_ms: int) -> Iterable[tuple[str, Ring]]:
        """(id, ring) of the no-fly polygons in force at now_ms."""
        ...


class ReferenceFleet:
    """The packaged reference data, standing in for the registry."""

    def __init__(self, reference: ReferenceData) -> None:
        self.reference = reference

    def capabilities(self) -> list[frozenset[str]]:
        return [frozenset(d.capabilities) for d in self.reference.drones]

    def no_fly_zones(self, now_ms: int) -> Iterable[tuple[str, Ring]]:
        for fence in self.reference.geofences:
            if fence.kind not in NO_FLY_KINDS:
                continue
            zone = NoFlyZone(
                fence.id, fence.ring, _iso_ms(fence.active_from), _iso_ms(fence.active_until)
            )
            if zone.active_at(now_ms):
                yield zone.id, zone.ring


class LiveFleet:
    """What the dispatch worker's registry view holds; the reference drones while it holds
    none."""

    def __init__(self, worker: CoreOwner, reference: ReferenceData) -> None:
        self.worker = worker
        self.reference = reference

    def capabilities(self) -> list[frozenset[str]]:
        specs = self.worker.specs
        if specs:
            return [frozenset(spec.capabilities) for spec in specs.values()]
        return ReferenceFleet(self.reference).capabilities()

    def no_fly_zones(self, now_ms: int) -> Iterable[tuple[str, Ring]]:
        for zone in dict(self.worker.zone_views).values():
            if zone.active_at(now_ms):
                yield zone.id, zone.ring


def _iso_ms(value: str | None) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000) if value else 0
