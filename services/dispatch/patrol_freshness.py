"""Dispatch's view of inspection freshness for its patrols: the plans from its registry view,
the cells' last-seen times from the drone states it already consumes (a drone at inspection
altitude sees the cells in its camera footprint), handed to the pure core as plain data."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from airgrid.config import Settings
from airgrid.freshness import NEVER, FreshnessGrid, PlanArea
from airgrid.geo import LocalProjection
from airgrid.reference import DEFAULT_CAMERA_FOV_DEG, ReferenceData
from airgrid.v1 import drone_state_pb2, telemetry_pb2
from services.dispatch.domain.fresh_sorties import NEVER_SEEN, DueCell, FreshnessView

log = logging.getLogger("airgrid.dispatch")

PLAN_KEY_PREFIX = "inspection-plan:"

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


class PatrolFreshness:
    """The zone's freshness grid as dispatch keeps it; view() is what the core plans from."""

    def __init__(self, reference: ReferenceData, settings: Settings) -> None:
        self.grid = FreshnessGrid(
            reference.zone.boundary,
            LocalProjection(*reference.zone.centre),
            cell_m=settings.coverage_cell_m,
            timezone=ZoneInfo(settings.zone_timezone),
        )
        self.fov_deg = {drone.id: drone.camera_fov_deg for drone in reference.drones}
        self._centres = [self.grid.cell_centre(c) for c in range(len(self.grid))]
        self._plans: dict[str, PlanArea] = {}
        self._plans_changed = False

    def on_registry_change(self, key: str, change: Any) -> None:
        """Keeps the inspection plans; a change rebuilds the masks once, at the next view."""
        if not key.startswith(PLAN_KEY_PREFIX):
            return
        if change is None or change.deleted or not change.HasField("inspection_plan"):
            self._plans.pop(key, None)
        else:
            try:
                self._plans[key] = PlanArea.from_event(change.inspection_plan)
            except ValueError:  # the registry validates plans; a bad one is skipped
                log.exception("inspection plan not usable for patrols", extra={"key": key})
                self._plans.pop(key, None)
        self._plans_changed = True

    def use_plans(self, plans: Iterable[PlanArea]) -> None:
        """Replace every plan at once (the accelerated twin's plans from the zone data)."""
        self._plans = {f"{PLAN_KEY_PREFIX}{plan.id}": plan for plan in plans}
        self._plans_changed = True

    def observe(self, state: drone_state_pb2.DroneState) -> None:
        """A surveying drone's state marks the cells its camera sees at its event time."""
        if state.flight_mode in _SURVEYING and state.event_time_ms > 0:
            fov = self.fov_deg.get(state.drone_id, DEFAULT_CAMERA_FOV_DEG)
            self.grid.observe_fix(state.lon, state.lat, state.alt_m, fov, state.event_time_ms)

    def view(self, now_ms: int) -> FreshnessView:
        """The overdue cells of every plan active at now_ms; empty while no plan is known, so
        the core keeps its lawn-mower routes until the registry view brings plans."""
        if self._plans_changed:
            self._plans_changed = False
            self.grid.set_plans(self._plans.values())
        cells: list[DueCell] = []
        for plan, mask, reference in self.grid.due_references(now_ms):
            interval_ms = plan.revisit_interval_s * 1000
            late = mask & ((reference == NEVER) | (now_ms - reference > interval_ms))
            for cell in np.flatnonzero(late):
                lon, lat = self._centres[int(cell)]
                seen = int(reference[cell])
                cells.append(
                    DueCell(
                        int(cell),
                        lon,
                        lat,
                        NEVER_SEEN if seen == NEVER else seen,
                        float(plan.revisit_interval_s),
                    )
                )
        return FreshnessView(tuple(cells), planned=bool(self._plans))
