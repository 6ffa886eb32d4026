"""Freshness in the telemetry service: the zone's last-seen grid fed by accepted fixes, the
plans from the registry view, and the grid's snapshot in PostgreSQL.

Each replica marks the cells its own fixes (its raw-topic partitions) see, and merges its grid
with the stored snapshot every `sync_seconds`: it takes the later time per cell of both and
writes the merge back, in one transaction that locks the row. So every replica's grid holds
every replica's sightings at most two sync periods late, a restart starts from the snapshot,
and sightings are never lost by a merge (later time per cell, in any order). A crash loses
at most the sightings of the last sync period of the crashed replica. In the same
transaction, the replica that has just merged writes the most overdue cells of each plan for
the operators' map (overdue_read_model.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import TopicView, now_ms
from airgrid.config import Settings
from airgrid.freshness import FreshnessGrid, FreshnessReport, FreshnessSnapshot, PlanArea
from airgrid.geo import LocalProjection
from airgrid.reference import DEFAULT_CAMERA_FOV_DEG, ReferenceData
from airgrid.v1 import telemetry_pb2
from services.telemetry.metrics import FRESHNESS_OVERALL, FRESHNESS_SHARE, OVERDUE_CELLS
from services.telemetry.models import inspection_freshness
from services.telemetry.overdue_read_model import OverdueCellsReadModel

log = logging.getLogger("airgrid.telemetry")

PLAN_KEY_PREFIX = "inspection-plan:"
SYNC_SECONDS = 10.0

# Docked, or a mode the autopilot did not name: the camera is not surveying.
_SURVEYING = frozenset(
    {
        telemetry_pb2.FLIGHT_MODE_TAKING_OFF,
        telemetry_pb2.FLIGHT_MODE_CRUISING,
        telemetry_pb2.FLIGHT_MODE_HOVERING,
        telemetry_pb2.FLIGHT_MODE_RETURNING,
        telemetry_pb2.FLIGHT_MODE_LANDING,
    }
)


def is_plan_key(key: str) -> bool:
    return key.startswith(PLAN_KEY_PREFIX)


class FreshnessKeeper:
    """The grid, its plans, the camera of each drone, and the gauges."""

    def __init__(
        self,
        reference: ReferenceData,
        settings: Settings,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.grid = FreshnessGrid(
            reference.zone.boundary,
            LocalProjection(*reference.zone.centre),
            cell_m=settings.coverage_cell_m,
            timezone=ZoneInfo(settings.zone_timezone),
        )
        # The registry's drone entity carries no camera: the zone data's value by drone id,
        # the model default for drones registered later.
        self.fov_deg = {drone.id: drone.camera_fov_deg for drone in reference.drones}
        # One snapshot row per deployment: its topics hold the plans and the fixes.
        self.stream = settings.topic_prefix or "-"
        self.clock = clock
        # Replaced at most every half sync period, whatever the number of replicas.
        self.overdue_cells = OverdueCellsReadModel(
            self.stream, min_interval_ms=int(SYNC_SECONDS * 1000 / 2)
        )
        self._plans: dict[str, PlanArea] = {}
        self._plans_changed = False
        self._gauged: set[tuple[str, str]] = set()

    # --- plans ---------------------------------------------------------------------------------

    def follow(self, registry: TopicView) -> None:
        """Keeps the plans of the registry view: those already read, and every later change."""
        for key, change in list(registry.items.items()):
            self.on_registry_change(key, change)
        chained = registry.on_update

        def on_update(key: str, change: Any) -> None:
            if chained is not None:
                chained(key, change)
            self.on_registry_change(key, change)

        registry.on_update = on_update

    def on_registry_change(self, key: str, change: Any) -> None:
        if not is_plan_key(key):
            return
        if change is None or change.deleted or not change.HasField("inspection_plan"):
            self._plans.pop(key, None)
        else:
            try:
                self._plans[key] = PlanArea.from_event(change.inspection_plan)
            except ValueError:  # the registry validates plans; a bad one is skipped, not fatal
                log.exception("inspection plan not usable for freshness", extra={"key": key})
                self._plans.pop(key, None)
        # Masks are rebuilt once before the next answer, not once per record of a replay.
        self._plans_changed = True

    def _current(self) -> FreshnessGrid:
        if self._plans_changed:
            self._plans_changed = False
            self.grid.set_plans(self._plans.values())
        return self.grid

    # --- sightings -----------------------------------------------------------------------------

    def observe(self, accepted: Iterable[telemetry_pb2.Telemetry]) -> None:
        """Accepted fixes of surveying drones mark the cells their camera sees."""
        observe_fix = self.grid.observe_fix
        fov_of = self.fov_deg.get
        for fix in accepted:
            if fix.flight_mode in _SURVEYING:
                observe_fix(
                    fix.lon,
                    fix.lat,
                    fix.alt_m,
                    fov_of(fix.drone_id, DEFAULT_CAMERA_FOV_DEG),
                    fix.event_time_ms,
                )

    # --- answers -------------------------------------------------------------------------------

    def report(self, at_ms: int | None = None) -> FreshnessReport:
        return self._current().report(self.clock() if at_ms is None else at_ms)

    def answer(self, limit: int) -> tuple[FreshnessReport, dict[str, PlanArea], dict[str, Any]]:
        """The shares, the plans they are of, and the `limit` latest overdue cells as GeoJSON,
        all at one moment."""
        at_ms = self.clock()
        grid = self._current()
        plans = {plan.id: plan for plan in grid.plans}
        return grid.report(at_ms), plans, grid.overdue_geojson(at_ms, limit)

    def set_gauges(self) -> FreshnessReport:
        report = self.report()
        FRESHNESS_OVERALL.set(report.share)
        current = set()
        for plan in report.plans:
            labels = (plan.plan_id, plan.department)
            current.add(labels)
            FRESHNESS_SHARE.labels(*labels).set(plan.share)
            OVERDUE_CELLS.labels(plan.plan_id).set(plan.due_cells - plan.fresh_cells)
        for gone in self._gauged - current:  # a deleted or moved plan leaves no stale series
            FRESHNESS_SHARE.remove(*gone)
            if gone[0] not in {plan_id for plan_id, _ in current}:
                OVERDUE_CELLS.remove(gone[0])
        self._gauged = current
        return report

    # --- the snapshot --------------------------------------------------------------------------

    async def sync(self, engine: AsyncEngine) -> None:
        """Merges the grid with the stored snapshot (later time per cell), stores the merge and,
        unless another replica just did, the overdue cells of the merged grid."""
        table = inspection_freshness
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    sa.select(table.c.snapshot)
                    .where(table.c.stream == self.stream)
                    .with_for_update()
                )
            ).first()
            if row is not None:
                try:
                    self.grid.restore(FreshnessSnapshot.decode(row.snapshot))
                except ValueError:  # another zone or cell size: this grid replaces it
                    log.warning("stored freshness snapshot is of another grid; replacing it")
            data = self.grid.snapshot().encode()
            at_ms = self.clock()
            values = {"snapshot": data, "saved_ms": at_ms}
            if row is None:
                await connection.execute(sa.insert(table).values(stream=self.stream, **values))
            else:
                await connection.execute(
                    sa.update(table).where(table.c.stream == self.stream).values(**values)
                )
            try:  # the map's rows never cost the merge: a failure rolls back only them
                async with connection.begin_nested():
                    await self.overdue_cells.write(connection, self._current(), at_ms)
            except SQLAlchemyError:
                log.exception("overdue cells not written; the next merge retries")

    async def run(self, engine: AsyncEngine, sync_seconds: float = SYNC_SECONDS) -> None:
        """Never returns: the gauges and the snapshot, every sync period."""
        while True:
            self.set_gauges()
            await asyncio.sleep(sync_seconds)
            await self.try_sync(engine)

    async def try_sync(self, engine: AsyncEngine) -> bool:
        """sync, logged and not raised on failure: the grid goes on, the next period retries."""
        try:
            await self.sync(engine)
        except Exception:
            log.exception("freshness snapshot not merged; retrying next period")
            return False
        return True
