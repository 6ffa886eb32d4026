"""What the dispatch core holds, and the bookkeeping every part of it shares: settings,
geometry and the area, the idle-drone index, the clock and the closed incidents."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.geo import LocalProjection
from services.dispatch.domain.drone_index import DroneGrid, IdleDrones
from services.dispatch.domain.fresh_sorties import FreshnessView
from services.dispatch.domain.model import (
    DroneView,
    IncidentSlots,
    Mission,
    MissionStage,
    NestView,
    SlaAlertKind,
)
from services.dispatch.domain.nofly import DetourPlanner, NoFlyZone, Target, planner_for
from services.dispatch.domain.patrols import PatrolRoute
from services.dispatch.domain.run_cards import RunCard, RunCards

XY = tuple[float, float]

# Stages in which a mission still heads for, or works at, its scene; a drone failing in one
# of them leaves its slot uncovered and is replaced.
OUTBOUND = (MissionStage.ASSIGNED, MissionStage.LAUNCHED, MissionStage.ON_SCENE)


@dataclass(frozen=True)
class CoreSettings:
    """Tunables of the core; the worker fills them from airgrid.config.Settings."""

    reserve_pct: float = 20.0
    sla_seconds: float = 300.0
    cell_m: float = 500.0
    detour_margin_m: float = 30.0
    duplicate_radius_m: float = 300.0
    duplicate_window_s: float = 600.0
    preempt_max_priority: int = 1  # incidents at this priority or more urgent may preempt
    patrol_keep_docked: int = 2  # idle drones a nest keeps docked before it sends a patrol
    patrol_interval_s: float = 1800.0
    # A closed incident's id is kept this long (core time) so a replay of its record decides
    # nothing; older replays are refused by the worker, which passes only incidents still
    # accepted or queued in the database.
    replay_horizon_s: float = 3600.0
    # Nests, no-fly zones and idle drones farther than this outside the zone's bounding box
    # are kept out: every grid and card is sized from their positions.
    area_margin_m: float = 10_000.0
    # Relays: an incident asking for at least relay_from_s on scene may be covered by a
    # chain of drones, each staying at least relay_min_on_scene_s; a relief is launched when
    # its time to scene plus relay_lead_s reaches the time the drone on scene must turn
    # home, and relay_at_risk is raised relay_alert_s before that time if none can go.
    relay_from_s: float = 1200.0
    relay_min_on_scene_s: float = 300.0
    relay_lead_s: float = 180.0
    relay_alert_s: float = 600.0


@dataclass(frozen=True)
class OutOfArea:
    """An entity the core keeps out because it lies outside the zone's area."""

    kind: str  # nest, geofence or drone
    entity_id: str
    reason: str


class CoreState:
    """The state of the core (see core.py for the whole machine). Time enters only as values
    carried by the inputs (now_ms); the core keeps the latest it has seen."""

    def __init__(
        self,
        *,
        reserve_pct: float = 20.0,
        settings: CoreSettings | None = None,
        origin: tuple[float, float] | None = None,
        area: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        """area: the zone's boundary (lon, lat); what lies beyond its bounding box widened by
        settings.area_margin_m is kept out and reported through take_out_of_area()."""
        self.settings = settings or CoreSettings(reserve_pct=reserve_pct)
        self.reserve_pct = self.settings.reserve_pct
        if origin is None and area:
            origin = area[0]
        self.projection = LocalProjection(*origin) if origin is not None else None
        self.area_box: tuple[float, float, float, float] | None = None
        if area:
            xs, ys = zip(*(self._xy(lon, lat) for lon, lat in area), strict=True)
            m = self.settings.area_margin_m
            self.area_box = (min(xs) - m, min(ys) - m, max(xs) + m, max(ys) + m)
        self._out_of_area: list[OutOfArea] = []
        self.outside: set[str] = set()  # drones whose latest position is outside the area
        self.drones: dict[str, DroneView] = {}
        self.nests: dict[str, NestView] = {}
        self.busy: dict[str, str] = {}  # drone id -> mission id
        self.missions: dict[str, Mission] = {}
        self.incidents: dict[str, IncidentSlots] = {}  # live: open slots or active missions
        # Incidents accepted, live or closed within the replay horizon: replays are no-ops.
        self.seen_incidents: set[str] = set()
        self.links: dict[str, str] = {}  # live duplicate incident -> its live primary
        self.on_scene: set[str] = set()  # live incidents with a drone on scene (SLA met)
        self.alerted: set[tuple[str, SlaAlertKind]] = set()  # of live incidents
        self._closed: dict[str, int] = {}  # closed incident -> when (core ms), oldest first
        self.zones: dict[str, NoFlyZone] = {}
        self.routes: dict[str, PatrolRoute] = {}
        self.route_flown_ms: dict[str, int] = {}
        # Freshness-driven patrols: the view, each sortie's route and cells by route id (one
        # id per nest and concurrent sortie, reused), when each cell was last sent to, and
        # how many patrols may start at a tick (None: no limit).
        self.freshness = FreshnessView()
        self.fresh_routes: dict[str, PatrolRoute] = {}
        self.fresh_cells: dict[str, tuple[int, ...]] = {}
        self.cell_sent_ms: dict[int, int] = {}
        self.patrol_budget: int | None = None
        self.now_ms = 0
        # Idle drones: docked ones at their nests by run card, the others (in the air, or
        # docked away from their nest) in a live grid searched ring by ring.
        self.live = DroneGrid(self.settings.cell_m)
        self.cards = RunCards(self.settings.cell_m)
        self.index = IdleDrones(self.live, self.cards)  # every idle drone, either way
        self._planners: dict[frozenset[str], DetourPlanner] = {}
        # The planner of the zones active now, and the time until which that set holds.
        self._planner_now: tuple[DetourPlanner, float] | None = None
        # The latest prepared scene: (planner, scene xy, target, return leg in metres).
        self._prepared: tuple[DetourPlanner, XY, Target, float] | None = None
        self._vmax = 1.0
        # Counts changes that may make a waiting incident servable without draining the queue
        # (a drone moved or its battery changed a little; a no-fly zone changed): _serve
        # re-tries only the waiting incidents searched before the latest such change.
        self._quiet_changes = 0
        self._online_xy: list[tuple[str, XY]] = []  # online nests, projected once
        self._nest_xy: dict[str, XY] = {}  # every nest, projected once

    def _xy(self, lon: float, lat: float) -> XY:
        if self.projection is None:
            self.projection = LocalProjection(lon, lat)
        return self.projection.to_xy(lon, lat)

    def planner(self) -> DetourPlanner:
        """The detour planner of the no-fly zones active now, built once per set; the set is
        looked up again only when the clock passes the next zone's start or end."""
        now = self.now_ms
        current = self._planner_now
        if current is not None and now < current[1]:
            return current[0]
        active = frozenset(z.id for z in self.zones.values() if z.active_at(now))
        planner = self._planners.get(active)
        if planner is None:
            if self.projection is None:
                first = next(iter(self.zones.values()), None)
                self.projection = LocalProjection(*(first.ring[0] if first else (0.0, 0.0)))
            zones = [self.zones[z] for z in sorted(active)]
            planner = planner_for(zones, self.projection, margin_m=self.settings.detour_margin_m)
            self._planners[active] = planner
        changes = [
            t
            for z in self.zones.values()
            for t in (z.active_from_ms, z.active_until_ms + 1 if z.active_until_ms else 0)
            if t > now
        ]
        self._planner_now = (planner, min(changes, default=math.inf))
        return planner

    def path_to(self, drone: DroneView, lon: float, lat: float) -> tuple[tuple[float, float], ...]:
        """Waypoints (lon/lat) a drone flies to reach a point, around the no-fly zones."""
        assert drone.lon is not None and drone.lat is not None and self.projection is not None
        planner = self.planner()
        waypoints = planner.path(self._xy(drone.lon, drone.lat), self._target(self._xy(lon, lat)))
        return tuple(self.projection.to_lon_lat(*p) for p in waypoints)

    def _target(self, scene: XY) -> Target:
        """The planner's target for a scene, shared with the latest prepared one."""
        planner = self.planner()
        prepared = self._prepared
        if prepared is not None and prepared[0] is planner and prepared[1] == scene:
            return prepared[2]
        return planner.target(scene)

    # -- the area ------------------------------------------------------------------------

    def in_area(self, xy: XY) -> bool:
        """Is a projected point within the zone's area (always, when none was given)?"""
        box = self.area_box
        return box is None or (box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3])

    def take_out_of_area(self) -> list[OutOfArea]:
        """The entities kept out since the last call, for the worker to log and count."""
        found, self._out_of_area = self._out_of_area, []
        return found

    def _keep_out(self, kind: str, entity_id: str, lon: float, lat: float) -> None:
        self._out_of_area.append(
            OutOfArea(
                kind,
                entity_id,
                f"{kind} {entity_id} at ({lon:.5f}, {lat:.5f}) lies more than "
                f"{self.settings.area_margin_m:.0f} m outside the zone; ignored",
            )
        )

    def _nearest_online(self, xy: XY, card: RunCard | None = None) -> str:
        """The online nest nearest to xy (ties by id), walking its run card nearest first."""
        best: tuple[float, str] = (math.inf, "")
        nests = self.nests
        for lower, nest_id in (card or self.cards.card(xy)).nests:
            if lower > best[0] + 1e-6:
                break
            if nests[nest_id].online:
                found = (math.dist(self._nest_xy[nest_id], xy), nest_id)
                if found < best:
                    best = found
        return best[1]

    # -- clock and closed incidents ------------------------------------------------------

    def _advance(self, now_ms: int | None) -> int:
        if now_ms is not None and now_ms > self.now_ms:
            self.now_ms = now_ms
            self._forget_closed()
        return self.now_ms

    def _forget_closed(self) -> None:
        """Ids of incidents closed longer than the replay horizon ago leave seen_incidents."""
        oldest = self.now_ms - self.settings.replay_horizon_s * 1000
        while self._closed:
            incident_id, closed_ms = next(iter(self._closed.items()))
            if closed_ms >= oldest:
                return
            del self._closed[incident_id]
            if incident_id not in self.incidents and incident_id not in self.links:
                self.seen_incidents.discard(incident_id)

    def _has_waiting(self) -> bool:
        return any(e.open_slots for e in self.incidents.values())

    # -- the idle-drone index ------------------------------------------------------------

    @staticmethod
    def _healthy(drone: DroneView) -> bool:
        return drone.active and drone.link_ok and not drone.faults and drone.has_position

    def _failure(self, drone: DroneView) -> str:
        if not drone.link_ok:
            return "link lost"
        if drone.faults:
            return "fault: " + ", ".join(drone.faults)
        if not drone.active:
            return "taken out of service"
        if drone.battery_pct < self.reserve_pct:
            return "low battery"
        return ""

    def _idle(self, drone: DroneView) -> bool:
        return self._healthy(drone) and drone.id not in self.busy

    def _reindex(self, drone: DroneView) -> None:
        if self._idle(drone):
            assert drone.lon is not None and drone.lat is not None
            xy = self._xy(drone.lon, drone.lat)
            if not self.in_area(xy):
                # Not searchable: a grid's rings would reach out to it.
                if drone.id not in self.outside:
                    self.outside.add(drone.id)
                    self._keep_out("drone", drone.id, drone.lon, drone.lat)
                self._unindex(drone.id)
                return
            self.outside.discard(drone.id)
            if self.cards.fits(drone, xy):
                self.live.remove(drone.id)
                self.cards.put(drone, xy)
            else:
                self.cards.remove(drone.id)
                self.live.put(drone.id, xy)
        else:
            self._unindex(drone.id)

    def _unindex(self, drone_id: str) -> None:
        self.live.remove(drone_id)
        self.cards.remove(drone_id)
