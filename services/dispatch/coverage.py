"""Coverage edge: GET /v1/coverage, the coverage gauges and the rebalancing hook's I/O shape.

`CoverageKeeper` reads the dispatch core's idle drones and nests (no I/O), computes the
coverage of the zone's grid and turns the rebalancer's moves into relocation orders (a LAUNCH
without a mission, along a path around the no-fly zones, to land at another nest), which the
worker stores and publishes like any other drone command.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from airgrid.auth import CurrentPrincipal
from airgrid.config import Settings
from airgrid.geo import LocalProjection
from airgrid.problems import Problem
from airgrid.query_params import TrueOrFalse, WholeNumber
from airgrid.reference import ReferenceData
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.coverage import CoverageGrid, CoverageSnapshot, Reacher, reachers_of
from services.dispatch.domain.model import Decision, DroneOrder, DroneView, OrderKind
from services.dispatch.domain.patrols import PatrolRoute
from services.dispatch.domain.rebalance import (
    BoolArray,
    Donor,
    Move,
    NestSite,
    PatrolPolicy,
    Rebalancer,
    RebalanceSettings,
    patrol_budget,
)
from services.dispatch.metrics import (
    COVERAGE_DRONES,
    COVERAGE_HOLES,
    COVERAGE_RATIO,
    PATROL_BUDGET,
    REBALANCE_MOVES,
)

# A docked drone this close to a nest is at that nest (positions are GPS fixes).
_AT_NEST_M = 200.0
REBALANCE_INCIDENT = "rebalance"


class CoverageKeeper:
    """The zone's grid, the rebalancer's memory and when it last ran."""

    def __init__(self, reference: ReferenceData, settings: Settings) -> None:
        self.projection = LocalProjection(*reference.zone.centre)
        self.grid = CoverageGrid(reference.zone.boundary, self.projection, settings.coverage_cell_m)
        self.sla_seconds = settings.sla_seconds
        self.reserve_pct = settings.battery_reserve_pct
        self.interval_ms = int(settings.rebalance_interval_s * 1000)
        self.rebalancer = Rebalancer(
            RebalanceSettings(
                enabled=settings.rebalance_enabled,
                trigger_ratio=settings.rebalance_trigger_ratio,
            )
        )
        self.last_run_ms = 0
        self.last: CoverageSnapshot | None = None
        self.patrol_policy = PatrolPolicy()
        # Every patrol route of the core (it is handed only the routes it may start now).
        self._routes: dict[str, PatrolRoute] = {}
        self._routes_of: DispatchCore | None = None
        # Per capability class (and its members): the cells it reaches from home.
        self._areas: dict[tuple[str, frozenset[str]], BoolArray] = {}

    @staticmethod
    def available(core: DispatchCore) -> list[DroneView]:
        """The core's idle, healthy drones (its index holds exactly those). The core may be
        changing in the worker's thread (services/dispatch/off_loop.py): its dicts are
        copied, each in one step, before they are walked."""
        drones = dict(core.drones)
        return [drones[i] for i in sorted(core.index.where) if i in drones]

    def snapshot(self, core: DispatchCore) -> CoverageSnapshot:
        reachers = reachers_of(
            self.available(core),
            core.nests,
            self.projection,
            sla_seconds=self.sla_seconds,
            reserve_pct=self.reserve_pct,
        )
        snapshot = self.grid.snapshot(reachers)
        COVERAGE_RATIO.set(snapshot.ratio)
        COVERAGE_DRONES.set(snapshot.reachers)
        COVERAGE_HOLES.set(snapshot.cells - snapshot.covered_cells)
        self.last = snapshot
        return snapshot

    def rebalance(self, core: DispatchCore, now_ms: int) -> list[Decision]:
        """Called from the worker's clock: refresh the gauge; when coverage is low, orders
        that move idle docked drones to the nests that close the most holes."""
        if now_ms - self.last_run_ms < self.interval_ms:
            return []
        self.last_run_ms = now_ms
        available = self.available(core)
        reachers = reachers_of(
            available,
            core.nests,
            self.projection,
            sla_seconds=self.sla_seconds,
            reserve_pct=self.reserve_pct,
        )
        snapshot = self.grid.snapshot(reachers)
        COVERAGE_RATIO.set(snapshot.ratio)
        COVERAGE_DRONES.set(snapshot.reachers)
        COVERAGE_HOLES.set(snapshot.cells - snapshot.covered_cells)
        self.last = snapshot
        self.gate_patrols(core, coverage=snapshot.ratio, idle=len(available))
        sites = [
            NestSite(n.id, *self.projection.to_xy(n.lon, n.lat))
            for n in sorted(core.nests.values(), key=lambda n: n.id)
            if n.online and not n.weather_hold
        ]
        # Nests whose gateways report them offline or held by wind (through their docked
        # drones' faults) take no drones, even while the registry still lists them online.
        held = [d for d in core.drones.values() if _nest_held(d)]
        held_nests = set(self._docked_at(held, sites).values())
        sites = [site for site in sites if site.id not in held_nests]
        docked_at = self._docked_at(available, sites)
        self.rebalancer.settle(docked_at=docked_at, idle={d.id for d in available}, now_ms=now_ms)
        reach = {r.drone_id: r for r in reachers}
        donors = [
            Donor(d.id, docked_at[d.id], reach[d.id].x, reach[d.id].y, reach[d.id].reach_m,
                  d.battery_pct)
            for d in available
            if d.id in docked_at and d.id in reach
        ]  # fmt: skip
        moves = self.rebalancer.plan(
            grid=self.grid, reachers=reachers, donors=donors, sites=sites, now_ms=now_ms
        )
        moves += self._rebalance_classes(core, reachers, donors, sites, now_ms)
        REBALANCE_MOVES.inc(len(moves))
        orders = (_relocation(core, m) for m in moves)
        return [o for o in orders if o is not None]

    def _rebalance_classes(
        self,
        core: DispatchCore,
        reachers: list[Reacher],
        donors: list[Donor],
        sites: list[NestSite],
        now_ms: int,
    ) -> list[Move]:
        """Then the scarce capabilities (zoom, gas sensor, loudspeaker …), fewest drones
        first: where a class's idle drones no longer reach the cells its fleet reaches from
        home, move one of that class's idle drones there. Any drone covers the zone, but
        only a few can answer a gas leak."""
        moves: list[Move] = []
        left = self.rebalancer.settings.max_moves_per_round
        for capability, members in self._classes(core):
            if left <= 0:
                break
            area = self._class_area(core, capability, members)
            found = self.rebalancer.plan(
                grid=self.grid,
                reachers=[r for r in reachers if r.drone_id in members],
                donors=[d for d in donors if d.drone_id in members],
                sites=sites,
                now_ms=now_ms,
                area=area,
                max_moves=left,
            )
            moves += found
            left -= len(found)
        return moves

    @staticmethod
    def _classes(core: DispatchCore) -> list[tuple[str, frozenset[str]]]:
        """The capabilities some drones have and others lack, fewest drones first."""
        by_capability: dict[str, set[str]] = {}
        for drone in core.drones.values():
            for capability in drone.capabilities:
                by_capability.setdefault(capability, set()).add(drone.id)
        fleet = len(core.drones)
        return sorted(
            ((c, frozenset(ids)) for c, ids in by_capability.items() if len(ids) < fleet),
            key=lambda item: (len(item[1]), item[0]),
        )

    def _class_area(
        self, core: DispatchCore, capability: str, members: frozenset[str]
    ) -> BoolArray:
        """The cells the class's drones reach docked and charged at their home nests."""
        key = (capability, members)
        found = self._areas.get(key)
        if found is None:
            home = []
            for drone_id in sorted(members):
                drone = core.drones[drone_id]
                nest = core.nests.get(drone.home_nest)
                if nest is None:
                    continue
                home.append(
                    replace(drone, lon=nest.lon, lat=nest.lat, battery_pct=100.0, airborne=False,
                            link_ok=True, faults=(), active=True)
                )  # fmt: skip
            at_home = reachers_of(
                home,
                {n.id: replace(n, online=True, wind_mps=0.0) for n in core.nests.values()},
                self.projection,
                sla_seconds=self.sla_seconds,
                reserve_pct=self.reserve_pct,
            )
            found = self.grid.counts(at_home) > 0
            self._areas[key] = found
        return found

    def gate_patrols(self, core: DispatchCore, *, coverage: float, idle: int) -> int:
        """Hand the core only the patrol routes it may start now (those flying, plus as many
        due routes as the patrol budget allows); returns the budget."""
        if self._routes_of is not core:  # a new core (start-up, rebuilt): take its routes
            self._routes_of = core
            self._routes = dict(core.routes)
        if not self._routes:
            core.patrol_budget = 0
            return 0
        flying = {e.request.patrol_route for e in core.incidents.values()}
        flying.discard("")
        budget = patrol_budget(
            self.patrol_policy,
            fleet=len(core.drones),
            idle=idle,
            patrolling=len(flying),
            coverage=coverage,
        )
        due = sorted(
            (r for r in self._routes.values() if r.id not in flying),
            key=lambda r: (core.route_flown_ms.get(r.id, 0), r.id),
        )
        allowed = [self._routes[i] for i in sorted(flying) if i in self._routes]
        core.set_patrol_routes([*allowed, *due[:budget]])
        core.patrol_budget = budget  # freshness-driven sorties start within the same budget
        PATROL_BUDGET.set(budget)
        return budget

    def _docked_at(self, drones: list[DroneView], sites: list[NestSite]) -> dict[str, str]:
        found: dict[str, str] = {}
        for drone in drones:
            if drone.airborne or drone.lon is None or drone.lat is None or not sites:
                continue
            x, y = self.projection.to_xy(drone.lon, drone.lat)
            distance, nest_id = min((math.hypot(s.x - x, s.y - y), s.id) for s in sites)
            if distance <= _AT_NEST_M:
                found[drone.id] = nest_id
        return found


_NEST_FAULTS = frozenset({"nest_offline", "wind_hold"})


def _nest_held(drone: DroneView) -> bool:
    return not drone.airborne and bool(_NEST_FAULTS.intersection(drone.faults))


def _relocation(core: DispatchCore, move: Move) -> DroneOrder | None:
    """A docked drone moved to another nest takes off, flies around the no-fly zones and lands
    there: a LAUNCH with no mission whose target is the nest named by nest_id, and no hold.
    A RETURN would mean "back to your launch point" to an autopilot, which a docked, disarmed
    vehicle refuses; a drone no longer docked or with no flyable path gets no order. No
    mission: the drone stays idle and assignable on the way."""
    drone = core.drones.get(move.drone_id)
    nest = core.nests.get(move.to_nest_id)
    if drone is None or nest is None or drone.airborne or not drone.has_position:
        return None
    path = core.path_to(drone, nest.lon, nest.lat)
    if not path:
        return None
    return DroneOrder(
        REBALANCE_INCIDENT, "", drone.id, OrderKind.LAUNCH, (nest.lon, nest.lat), path,
        hold_seconds=0, nest_id=nest.id,
    )  # fmt: skip


# -- REST ---------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["coverage"])


class CoverageRead(BaseModel):
    ratio: float = Field(description="Share of the zone's area reached within the SLA, 0..1.")
    sla_seconds: float
    cell_m: float = Field(description="Side of the square grid cells, metres.")
    cells: int
    covered_cells: int
    area_km2: float
    covered_km2: float
    available_drones: int = Field(description="Drones that could take off for a scene now.")
    rebalancing: bool
    drones_repositioning: int
    computed_at_ms: int
    uncovered_cells: int
    uncovered: dict[str, Any] = Field(
        description="Uncovered cells as a GeoJSON FeatureCollection of Polygons (capped by limit)."
    )


@router.get(
    "/coverage",
    response_model=CoverageRead,
    summary="Share of the zone that available drones reach within the SLA",
)
async def get_coverage(
    request: Request,
    principal: CurrentPrincipal,
    uncovered: Annotated[
        bool, Query(description="Include uncovered cells as GeoJSON."), TrueOrFalse
    ] = True,
    limit: Annotated[
        int, Query(ge=0, le=50_000, description="Most cells returned."), WholeNumber
    ] = 5_000,
) -> CoverageRead:
    worker = getattr(request.app.state, "worker", None)
    keeper: CoverageKeeper | None = getattr(worker, "coverage", None)
    if worker is None or keeper is None:
        raise Problem(
            503,
            "Coverage not ready",
            "The dispatch worker is still starting; retry in a few seconds.",
            kind="not-ready",
        )
    snapshot = keeper.snapshot(worker.core)
    holes = snapshot.uncovered()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [keeper.grid.cell_ring(i)]},
            "properties": {"cell": i},
        }
        for i in (holes[:limit] if uncovered else [])
    ]
    return CoverageRead(
        ratio=round(snapshot.ratio, 5),
        sla_seconds=keeper.sla_seconds,
        cell_m=snapshot.cell_m,
        cells=snapshot.cells,
        covered_cells=snapshot.covered_cells,
        area_km2=round(snapshot.area_km2, 3),
        covered_km2=round(snapshot.covered_km2, 3),
        available_drones=snapshot.reachers,
        rebalancing=keeper.rebalancer.settings.enabled,
        drones_repositioning=len(keeper.rebalancer.in_transit),
        computed_at_ms=int(time.time() * 1000),
        uncovered_cells=len(holes),
        uncovered={"type": "FeatureCollection", "features": features},
    )
