"""The dispatch state machine: incidents, drone states and clock ticks in; decisions out."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from airgrid.geo import LocalProjection
from services.dispatch.domain.drone_index import DroneGrid, IdleDrones
from services.dispatch.domain.eta import Estimate, estimate, launch_overhead_s
from services.dispatch.domain.model import (
    Assigned,
    Assignment,
    Decision,
    DroneOrder,
    DroneView,
    IncidentRequest,
    IncidentSlots,
    Linked,
    Mission,
    MissionStage,
    NestView,
    OrderKind,
    PatrolStarted,
    Preempted,
    Queued,
    Redispatched,
    SlaAlert,
    SlaAlertKind,
    StageReached,
    mission_id_for,
)
from services.dispatch.domain.nofly import DetourPlanner, NoFlyZone, Target, planner_for
from services.dispatch.domain.patrols import PatrolRoute
from services.dispatch.domain.run_cards import SITE_RADIUS_M, DockedGroup, RunCard, RunCards
from services.dispatch.domain.selection import (
    NO_KEY,
    Candidate,
    RankKey,
    best_first,
    choose,
    kth_best,
    least_key,
    may_improve,
    most_battery_first,
    rank_key,
    settled,
    unranked_order,
)
from services.dispatch.domain.stages import observed_stage

XY = tuple[float, float]

# Stages in which a mission still heads for, or works at, its scene; a drone failing in one
# of them leaves its slot uncovered and is replaced.
_OUTBOUND = (MissionStage.ASSIGNED, MissionStage.LAUNCHED, MissionStage.ON_SCENE)


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


@dataclass(frozen=True)
class OutOfArea:
    """An entity the core keeps out because it lies outside the zone's area."""

    kind: str  # nest, geofence or drone
    entity_id: str
    reason: str


# What a search heap entry stands for: a launch group, a live grid cell, or (None) the
# drone its key names.
_Entry = DockedGroup | tuple[int, int] | None


class DispatchCore:
    """Deterministic: the same sequence of calls always yields the same decisions.

    It holds which drone flies which mission and which incidents wait. Time enters only as
    values carried by the inputs (now_ms); the core keeps the latest it has seen.
    """

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

    # -- geometry ------------------------------------------------------------------------

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

    # -- inputs: world ---------------------------------------------------------------------

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

    def upsert_nest(self, nest: NestView) -> list[Decision]:
        xy = self._xy(nest.lon, nest.lat)
        if not self.in_area(xy):
            self._keep_out("nest", nest.id, nest.lon, nest.lat)
            return []
        self.nests[nest.id] = nest
        self._nest_xy[nest.id] = xy
        self._online_xy = [
            (n.id, self._xy(n.lon, n.lat)) for n in sorted(self.nests.values(), key=lambda n: n.id)
            if n.online
        ]  # fmt: skip
        self._prepared = None
        if self.cards.set_nest(nest.id, xy):
            # Idle drones of this nest go to (or leave) its run cards.
            for drone_id in sorted([*self.live.where, *self.cards.where]):
                drone = self.drones[drone_id]
                if drone.home_nest == nest.id:
                    self._reindex(drone)
        return self.drain_queue()

    def upsert_zone(self, zone: NoFlyZone | None, zone_id: str = "") -> list[Decision]:
        """A no-fly zone added or changed; None removes zone_id."""
        if zone is None:
            self.zones.pop(zone_id, None)
        else:
            far = next(
                ((lon, lat) for lon, lat in zone.ring if not self.in_area(self._xy(lon, lat))),
                None,
            )
            if far is not None:
                self._keep_out("geofence", zone.id, *far)
                return []
            self.zones[zone.id] = zone
        self._planners.clear()
        self._planner_now = None
        self._prepared = None
        self._quiet_changes += 1
        return []

    def set_patrol_routes(self, routes: Iterable[PatrolRoute]) -> None:
        self.routes = {r.id: r for r in routes}

    def upsert_drone(self, drone: DroneView, now_ms: int | None = None) -> list[Decision]:
        """A registry change or a state report; may move its mission, fail it or free it."""
        now = self._advance(now_ms)
        previous = self.drones.get(drone.id)
        self.drones[drone.id] = drone
        if drone.cruise_speed_mps > self._vmax:
            self._vmax = drone.cruise_speed_mps
        decisions: list[Decision] = []
        mission_id = self.busy.get(drone.id)
        if mission_id is not None:
            decisions.extend(self._follow(self.missions[mission_id], drone, now))
        self._reindex(drone)
        if not self._has_waiting():
            return decisions
        if drone.id in self.busy:
            mission = self.missions.get(self.busy[drone.id])
            if mission is not None and self._yields(mission):
                # A drone heading home (or on patrol) may serve a waiting incident: all of
                # them are tried when it turns home, and a move counts as a quiet change.
                turned_home = any(
                    isinstance(d, StageReached) and d.stage == MissionStage.RETURNING
                    for d in decisions
                )
                if turned_home:
                    decisions.extend(self.drain_queue())
                else:
                    self._quiet_changes += 1
            return decisions
        if previous is not None and _same_availability(previous, drone) and not decisions:
            self._quiet_changes += 1
            return decisions
        decisions.extend(self.drain_queue())
        return decisions

    def tick(self, now_ms: int) -> list[Decision]:
        """Clock tick: SLA at-risk and breach alerts, then patrols for idle drones."""
        now = self._advance(now_ms)
        decisions: list[Decision] = []
        flying: dict[str, list[Mission]] = {}
        for mission in sorted(self.missions.values(), key=lambda m: m.id):
            flying.setdefault(mission.incident_id, []).append(mission)
        for incident_id in sorted(self.incidents):
            entry = self.incidents[incident_id]
            if entry.request.patrol_route or incident_id in self.on_scene:
                continue
            if (incident_id, SlaAlertKind.BREACHED) in self.alerted:
                continue
            left = self.settings.sla_seconds - (now - entry.request.accepted_ms) / 1000.0
            if left < 0:
                eta = self._best_remaining_eta(incident_id, flying.get(incident_id, []))
                self.alerted.add((incident_id, SlaAlertKind.BREACHED))
                decisions.append(SlaAlert(incident_id, SlaAlertKind.BREACHED, eta, left, now))
                continue
            if (incident_id, SlaAlertKind.AT_RISK) in self.alerted:
                continue  # estimates are spent only where an alert could still follow
            eta = self._best_remaining_eta(incident_id, flying.get(incident_id, []))
            if eta > left:
                self.alerted.add((incident_id, SlaAlertKind.AT_RISK))
                decisions.append(SlaAlert(incident_id, SlaAlertKind.AT_RISK, eta, left, now))
        decisions.extend(self._start_patrols(now))
        return decisions

    # -- inputs: incidents -------------------------------------------------------------------

    def accept(self, incident: IncidentRequest, now_ms: int | None = None) -> list[Decision]:
        """A new incident; a replay of a known one decides nothing again."""
        if incident.id in self.seen_incidents:
            return []
        now = self._advance(incident.accepted_ms if now_ms is None else now_ms)
        self.seen_incidents.add(incident.id)
        primary = self._duplicate_of(incident)
        if primary is not None:
            self.links[incident.id] = primary.request.id
            if incident.priority < primary.rank:
                primary.rank = incident.priority
            reason = f"same {incident.type} reported by {primary.request.department or 'another'}"
            return [Linked(incident.id, primary.request.id, reason)]
        entry = IncidentSlots(incident, open_slots=set(range(incident.drones_needed)))
        self.incidents[incident.id] = entry
        return self._serve(entry, now, report_queued=True)

    def cancel(self, incident_id: str, now_ms: int | None = None) -> list[Decision]:
        """Forget an incident: its drones return and waiting incidents may take them."""
        now = self._advance(now_ms)
        self._drop(incident_id)
        decisions: list[Decision] = []
        for mission in self._missions_of(incident_id):
            decisions.extend(self._end(mission, MissionStage.CANCELLED, now, "cancelled"))
        decisions.extend(self.drain_queue())
        return decisions

    def mission_ended(self, mission_id: str, now_ms: int | None = None) -> list[Decision]:
        """The drone of a mission is back and free; waiting incidents may now get it."""
        now = self._advance(now_ms)
        mission = self.missions.get(mission_id)
        if mission is not None:
            self._release(mission)
            self._close_if_done(mission.incident_id, now)
        return self.drain_queue()

    def end_orphans(self, reason: str, now_ms: int | None = None) -> list[Decision]:
        """End the restored missions whose incident the core does not work on (closed,
        or a duplicate linked to another): the database still holds their drones, so they
        are cancelled and their drones sent home rather than left busy for nothing or,
        forgotten, assigned again over a mission the database keeps active."""
        now = self._advance(now_ms)
        decisions: list[Decision] = []
        for mission in sorted(self.missions.values(), key=lambda m: m.id):
            if mission.incident_id not in self.incidents:
                decisions.extend(self._end(mission, MissionStage.CANCELLED, now, reason))
        if decisions:
            decisions.extend(self.drain_queue())
        return decisions

    def restore(
        self,
        *,
        incidents: list[IncidentRequest],
        missions: list[tuple[str, str, str, int]] | list[Mission],
        attempts: dict[str, int] | None = None,
        links: dict[str, str] | None = None,
        on_scene: Iterable[str] = (),
        done_slots: dict[str, set[int]] | None = None,
        alerted: Iterable[tuple[str, SlaAlertKind]] = (),
    ) -> None:
        """Rebuild after a restart from the database: live incidents, active missions, how
        many missions each incident had (so new mission ids never collide), links, and the
        slots whose mission was flown to the end (they are done, never flown again)."""
        for incident in incidents:
            self.seen_incidents.add(incident.id)
            done = (done_slots or {}).get(incident.id, set())
            self.incidents[incident.id] = IncidentSlots(
                incident,
                open_slots=set(range(incident.drones_needed)) - done,
                attempts=(attempts or {}).get(incident.id, 0),
            )
        for item in missions:
            m = (
                item
                if isinstance(item, Mission)
                else Mission(item[0], item[1], item[2], item[3], MissionStage.ASSIGNED, 0.0, 0)
            )
            self.missions[m.id] = m
            self.busy[m.drone_id] = m.id
            self._unindex(m.drone_id)
            entry = self.incidents.get(m.incident_id)
            if entry is not None:
                entry.open_slots.discard(m.slot)
                if attempts is None:
                    entry.attempts += 1
            if m.stage in (MissionStage.ON_SCENE, MissionStage.RETURNING):
                self.on_scene.add(m.incident_id)
        for duplicate, primary in (links or {}).items():
            self.seen_incidents.add(duplicate)
            self.links[duplicate] = primary
        self.on_scene.update(on_scene)
        self.alerted.update(alerted)  # SLA alerts raised before the restart are not raised again
        for incident_id in [i for i, e in self.incidents.items() if not self._live(e)]:
            self._drop(incident_id)
        self.alerted = {a for a in self.alerted if a[0] in self.incidents}

    # -- queries -----------------------------------------------------------------------------

    @property
    def mission_drone(self) -> dict[str, str]:
        return {m.id: m.drone_id for m in self.missions.values()}

    @property
    def mission_incident(self) -> dict[str, str]:
        return {m.id: m.incident_id for m in self.missions.values()}

    def queued_incidents(self) -> list[IncidentSlots]:
        waiting = [e for e in self.incidents.values() if e.open_slots]
        return sorted(waiting, key=_queue_key)

    def candidates(self, incident: IncidentRequest, need: int = 1) -> list[Estimate]:
        """The best idle drones' estimates (feasible first, least ETA, then most battery)."""
        found, seen = self._search(incident, need)
        return [c.estimate for c in best_first(found)] + unranked_order(seen)

    def estimate_for(self, drone: DroneView, incident: IncidentRequest) -> Estimate:
        """The core's own estimate, detours and nearest-nest return included."""
        target, back_m = self._prepare(incident)
        return self._estimate(drone, incident, target, back_m)[0]

    # -- the queue ---------------------------------------------------------------------------

    def drain_queue(self) -> list[Decision]:
        decisions: list[Decision] = []
        for entry in self.queued_incidents():
            if self.incidents.get(entry.request.id) is not entry or not entry.open_slots:
                continue
            decisions.extend(self._try_assign(entry, self.now_ms, report_queued=False))
        return decisions

    def _serve(self, entry: IncidentSlots, now: int, *, report_queued: bool) -> list[Decision]:
        """Try entry, after every waiting incident that ranks before it: a drone may have
        become feasible for one of those without an availability change (it moved, or its
        battery changed a little), and it must not go to less urgent work first."""
        decisions: list[Decision] = []
        order = _queue_key(entry)
        ahead = [
            e
            for e in self.incidents.values()
            if e.open_slots and e.tried_at != self._quiet_changes and _queue_key(e) < order
        ]
        for waiting in sorted(ahead, key=_queue_key):
            if self.incidents.get(waiting.request.id) is waiting and waiting.open_slots:
                decisions.extend(self._try_assign(waiting, now, report_queued=False))
        if self.incidents.get(entry.request.id) is entry and entry.open_slots:
            decisions.extend(self._try_assign(entry, now, report_queued=report_queued))
        return decisions

    def _try_assign(self, entry: IncidentSlots, now: int, *, report_queued: bool) -> list[Decision]:
        incident = entry.request
        entry.tried_at = self._quiet_changes
        slots = sorted(entry.open_slots)
        idle, seen = self._search(incident, len(slots))
        spare = self._spare(incident, kth_best([c.key for c in idle], len(slots)))
        available = best_first([*idle, *spare])
        left = self.settings.sla_seconds - (now - incident.accepted_ms) / 1000.0
        may_preempt = not incident.patrol_route and entry.rank <= self.settings.preempt_max_priority
        takeable = self._takeable(entry, incident, may_preempt)
        decisions: list[Decision] = []
        chosen = choose(slots, available, takeable, left_s=left, may_preempt=may_preempt)
        assignments: list[Assignment] = []
        victims: list[str] = []
        for slot, pick in chosen:
            drone = self.drones[pick.estimate.drone_id]
            if pick.mission is not None and pick.mission.stage == MissionStage.RETURNING:
                decisions.extend(self._retask(pick.mission, incident.id, now))
            elif pick.mission is not None:
                victims.append(pick.mission.incident_id)
                decisions.extend(self._preempt(pick.mission, incident.id, now))
            mission_id = mission_id_for(incident.id, slot, entry.attempts)
            mission = Mission(
                mission_id, incident.id, drone.id, slot, MissionStage.ASSIGNED,
                round(pick.estimate.eta_seconds, 1), now,
            )  # fmt: skip
            self.missions[mission_id] = mission
            self.busy[drone.id] = mission_id
            self._unindex(drone.id)
            if pick.straight:
                assert self.projection is not None
                xy = self._xy(incident.lon, incident.lat)
                path: tuple[tuple[float, float], ...] = (self.projection.to_lon_lat(*xy),)
            else:
                path = self.path_to(drone, incident.lon, incident.lat)
            assignments.append(
                Assignment(
                    mission_id,
                    drone.id,
                    slot,
                    mission.eta_seconds,
                    drone.home_nest,
                    path,
                    drone.airborne,
                )
            )
            entry.open_slots.discard(slot)
        if assignments:
            entry.attempts += 1
            entry.reason = ""
            decisions.append(Assigned(incident.id, tuple(assignments), not entry.open_slots))
            for a in assignments:
                decisions.append(self._order_to_scene(incident, a))
        if entry.open_slots:
            entry.reason = _why(incident, seen, len(assignments))
            if report_queued or assignments:
                decisions.append(Queued(incident.id, tuple(sorted(entry.open_slots)), entry.reason))
        for victim_id in victims:
            # The preempted work is re-queued; an idle drone may still take it right away.
            victim = self.incidents.get(victim_id)
            if victim is not None and victim.open_slots:
                decisions.extend(self._serve(victim, now, report_queued=False))
        return decisions

    def _order_to_scene(self, incident: IncidentRequest, a: Assignment) -> DroneOrder:
        if incident.patrol_route:
            route = self.routes.get(incident.patrol_route)
            path = route.waypoints if route is not None else ()
            return DroneOrder(
                incident.id, a.mission_id, a.drone_id, OrderKind.LAUNCH,
                path[-1] if path else None, path, 1, a.from_nest_id,  # 1 s there, then home
            )  # fmt: skip
        kind = OrderKind.GOTO if a.airborne else OrderKind.LAUNCH
        return DroneOrder(
            incident.id, a.mission_id, a.drone_id, kind, (incident.lon, incident.lat), a.path,
            incident.on_scene_seconds, a.from_nest_id,
        )  # fmt: skip

    # -- search --------------------------------------------------------------------------------

    def _target(self, scene: XY) -> Target:
        """The planner's target for a scene, shared with the latest prepared one."""
        planner = self.planner()
        prepared = self._prepared
        if prepared is not None and prepared[0] is planner and prepared[1] == scene:
            return prepared[2]
        return planner.target(scene)

    def _prepare(self, incident: IncidentRequest) -> tuple[Target, float]:
        """The scene's target and the return leg to the online nest nearest to it (the scene
        cell's run card names the few nests that can be the nearest)."""
        planner = self.planner()
        scene = self._xy(incident.lon, incident.lat)
        prepared = self._prepared
        if prepared is not None and prepared[0] is planner and prepared[1] == scene:
            return prepared[2], prepared[3]
        target = planner.target(scene)
        back_m = 0.0
        if self._online_xy and target.reachable:
            self.cards.set_obstacles(planner.boxes)
            card = self.cards.card(scene)
            near = self._nearest_online(scene, card)
            start = self._nest_xy[near]
            if near in card.clear:
                back_m = math.hypot(start[0] - scene[0], start[1] - scene[1])
            else:
                back_m = planner.length_m(start, target)
        self._prepared = (planner, scene, target, back_m)
        return target, back_m

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

    def _estimate(
        self, drone: DroneView, incident: IncidentRequest, target: Target, back_m: float
    ) -> tuple[Estimate, float]:
        if not drone.has_position:
            return estimate(drone, incident, self.nests, reserve_pct=self.reserve_pct), math.inf
        assert drone.lon is not None and drone.lat is not None
        path_m = self.planner().length_m(self._xy(drone.lon, drone.lat), target)
        found = estimate(
            drone, incident, self.nests, reserve_pct=self.reserve_pct, path_m=path_m, back_m=back_m
        )
        return found, path_m

    def _search(
        self, incident: IncidentRequest, need: int
    ) -> tuple[list[Candidate], list[Estimate]]:
        """Best-first search of idle drones, exact: a heap of lower bounds on the rank key
        (selection.py) is fed by two sources, nearest first: the scene cell's run card
        (nests with idle docked drones, then their launch groups) and the rings of the live
        grid (drones in the air or away from their nest). Full estimates (detours, battery)
        run only for drones that could still beat the need-th best found.

        The infeasible estimates are complete when fewer than `need` drones are feasible
        (then every capable idle drone was estimated); they give the reason for the queue."""
        target, back_m = self._prepare(incident)
        scene = target.xy
        needs = incident.required_capabilities
        # Entries: (least key, sequence, what). A cell or group's least key sorts before
        # that of any drone with the same bound, so it opens first.
        heap: list[tuple[RankKey, int, _Entry]] = []
        feasible: list[Candidate] = []
        infeasible: list[Estimate] = []
        deferred: list[tuple[DockedGroup, int, float]] = []  # infeasible tails of groups
        rings = self.live.ring_cells(scene)
        next_ring = next(rings, None)
        vmax = self._vmax
        cards = self.cards
        sites = cards.sites
        clear: frozenset[str] = frozenset()
        walk: tuple[tuple[float, str], ...] = ()
        if sites:
            cards.set_obstacles(self.planner().boxes)
            card = cards.card(scene)
            walk, clear = card.nests, card.clear
        pos = 0
        card_over, card_speed = cards.min_overhead_s, cards.max_speed_mps
        seq = 0
        kth: RankKey | None = None  # the need-th best key found so far
        counted = 0  # len(feasible) when kth was taken
        scene_x, scene_y = scene
        live_cells = self.live.cells
        drones = self.drones
        push, pop = heapq.heappush, heapq.heappop
        nest_bound = ring_bound = source_bound = math.inf
        floor = NO_KEY  # the least key the sources can still yield
        moved_walk = moved_ring = True
        while True:
            if moved_walk or moved_ring:
                if moved_walk:
                    while pos < len(walk) and walk[pos][1] not in sites:
                        pos += 1
                    nest_bound = (
                        card_over + max(0.0, walk[pos][0] - SITE_RADIUS_M) / card_speed
                        if pos < len(walk)
                        else math.inf
                    )
                if moved_ring:
                    ring_bound = next_ring[0] / vmax if next_ring is not None else math.inf
                source_bound = nest_bound if nest_bound < ring_bound else ring_bound
                floor = least_key(source_bound)
                moved_walk = moved_ring = False
            if len(feasible) >= need and counted != len(feasible):
                kth = kth_best([c.key for c in feasible], need)
                counted = len(feasible)
            # What is still unseen is either on the heap or in a source; the least key a
            # source can still yield sorts before every drone of its bound, so a tie with a
            # drone not yet pushed is never cut off.
            top = heap[0][0] if heap else NO_KEY
            if settled(kth, top, floor):
                break
            if heap and top <= floor and may_improve(kth, top):
                _, _, what = pop(heap)
                if isinstance(what, DockedGroup):
                    straight = what.key[2] in clear
                    self._open_group(
                        what, incident, target, back_m, need, feasible, deferred, straight
                    )
                    continue
                if what is not None:
                    for member, (x, y) in live_cells[what].items():
                        drone = drones[member]
                        if not needs <= drone.capabilities:
                            continue
                        lower = launch_overhead_s(drone) + math.hypot(x - scene_x, y - scene_y) / (
                            drone.cruise_speed_mps
                        )
                        bound = least_key(lower, drone)
                        if may_improve(kth, bound):
                            push(heap, (bound, 0, None))
                    continue
                drone = drones[top[2]]
                found, path_m = self._estimate(drone, incident, target, back_m)
                if found.feasible:
                    feasible.append(Candidate(rank_key(found, drone), found, path_m))
                else:
                    infeasible.append(found)
                continue
            if source_bound == math.inf:
                break  # and the heap is empty: a non-empty one's top is below this floor
            if nest_bound <= ring_bound:
                for group in sites[walk[pos][1]].values():
                    gx, gy = group.xy
                    lower = group.overhead_s + math.hypot(gx - scene_x, gy - scene_y) / (
                        group.speed_mps
                    )
                    seq += 1
                    push(heap, (least_key(lower), seq, group))
                pos += 1
                moved_walk = True
                continue
            assert next_ring is not None
            for distance, cell in next_ring[1]:
                bound = least_key(distance / vmax)
                if may_improve(kth, bound):
                    seq += 1
                    push(heap, (bound, seq, cell))
            next_ring = next(rings, None)
            moved_ring = True
        if len(feasible) < need:
            for group, start, path_m in deferred:
                for drone in group.ordered()[start:]:
                    if needs <= drone.capabilities:
                        infeasible.append(
                            estimate(
                                drone, incident, self.nests, reserve_pct=self.reserve_pct,
                                path_m=path_m, back_m=back_m,
                            )
                        )  # fmt: skip
        return feasible, infeasible

    def _open_group(
        self,
        group: DockedGroup,
        incident: IncidentRequest,
        target: Target,
        back_m: float,
        need: int,
        feasible: list[Candidate],
        deferred: list[tuple[DockedGroup, int, float]],
        straight: bool,
    ) -> None:
        """The best `need` capable, feasible members of a launch group (they share one
        time to scene, so the order is most battery, then id). Once a member cannot cover
        the trip, no later one can: the rest is kept aside, estimated only if the search
        ends short. A straight group's leg is not looked up in the planner."""
        if straight:
            start, scene = group.xy, target.xy
            path_m = math.hypot(start[0] - scene[0], start[1] - scene[1])
        else:
            path_m = self.planner().length_m(group.xy, target)
        needs = incident.required_capabilities
        taken = 0
        for i, drone in enumerate(group.ordered()):
            if not needs <= drone.capabilities:
                continue
            found = estimate(
                drone, incident, self.nests, reserve_pct=self.reserve_pct,
                path_m=path_m, back_m=back_m,
            )  # fmt: skip
            if not found.feasible:
                deferred.append((group, i, path_m))
                return
            feasible.append(Candidate(rank_key(found, drone), found, path_m, straight=straight))
            taken += 1
            if taken >= need:
                return

    def _yields(self, mission: Mission) -> bool:
        """Work that gives its drone up to any incident for which it is the best choice: a
        mission whose drone heads home (its scene work is done), and a patrol sortie (the
        lowest rank of all)."""
        if mission.stage == MissionStage.RETURNING:
            return True
        owner = self.incidents.get(mission.incident_id)
        return owner is not None and bool(owner.request.patrol_route) and mission.stage in _OUTBOUND

    def _spare(self, incident: IncidentRequest, kth: RankKey | None) -> list[Candidate]:
        """Feasible drones whose work yields (heading home, or on patrol): they compete with
        the idle drones on the same key. A drone heading home must still be in the air, and
        its battery must cover the new trip, the time on scene and the way to the nearest
        nest with the reserve, like any other. Only the need best idle drones can be chosen,
        so a drone whose lower bound on the time to scene cannot beat the need-th best idle
        drone's key (`kth`) is not estimated (the full estimate, with detours, is the cost)."""
        pool: list[Candidate] = []
        target: Target | None = None
        back_m = 0.0
        needs = incident.required_capabilities
        scene_x, scene_y = self._xy(incident.lon, incident.lat)
        for mission in self.missions.values():  # the caller sorts by key
            if not self._yields(mission):
                continue  # (a drone heading home may fly again for another slot of its own)
            drone = self.drones.get(mission.drone_id)
            if drone is None or not self._healthy(drone) or not needs <= drone.capabilities:
                continue
            if mission.stage == MissionStage.RETURNING and not drone.airborne:
                continue
            if drone.has_position and kth is not None:
                assert drone.lon is not None and drone.lat is not None
                x, y = self._xy(drone.lon, drone.lat)
                lower = launch_overhead_s(drone) + math.hypot(x - scene_x, y - scene_y) / (
                    drone.cruise_speed_mps
                )
                if not may_improve(kth, least_key(lower, drone)):
                    continue
            if target is None:
                target, back_m = self._prepare(incident)
            found, path_m = self._estimate(drone, incident, target, back_m)
            if found.feasible:
                pool.append(Candidate(rank_key(found, drone), found, path_m, mission))
        return pool

    def _takeable(
        self, entry: IncidentSlots, incident: IncidentRequest, may_preempt: bool
    ) -> list[Candidate]:
        """Drones on lower-priority incidents that an urgent incident could take when that is
        the only way to meet the SLA (patrols and drones heading home are spare: see
        _spare). Best first."""
        pool: list[Candidate] = []
        target: Target | None = None
        back_m = 0.0
        if not may_preempt:
            return pool
        for mission in self.missions.values():  # the pool is sorted by key below
            owner = self.incidents.get(mission.incident_id)
            if owner is None or owner is entry or mission.stage not in _OUTBOUND:
                continue
            if owner.request.patrol_route or owner.rank <= entry.rank:
                continue
            drone = self.drones.get(mission.drone_id)
            if drone is None or not self._healthy(drone):
                continue
            if not incident.required_capabilities <= drone.capabilities:
                continue
            if target is None:
                target, back_m = self._prepare(incident)
            found, path_m = self._estimate(drone, incident, target, back_m)
            if found.feasible:
                pool.append(Candidate(rank_key(found, drone), found, path_m, mission))
        return best_first(pool)

    # -- missions --------------------------------------------------------------------------------

    def _preempt(self, mission: Mission, by_incident: str, now: int) -> list[Decision]:
        owner = self.incidents.get(mission.incident_id)
        reason = f"drone taken by more urgent incident {by_incident}"
        m = mission
        decisions: list[Decision] = [
            Preempted(m.incident_id, m.id, m.drone_id, m.slot, by_incident, reason),
            StageReached(m.id, m.incident_id, m.drone_id, MissionStage.CANCELLED, now, "preempted"),
        ]
        self._release(mission)
        if owner is None:
            return decisions
        if owner.request.patrol_route:
            self._drop(mission.incident_id)
            return decisions
        owner.open_slots.add(mission.slot)
        if not self._missions_of(mission.incident_id):
            self.on_scene.discard(mission.incident_id)
        owner.reason = "preempted: waiting for another drone"
        decisions.append(Queued(mission.incident_id, tuple(sorted(owner.open_slots)), owner.reason))
        return decisions

    def _retask(self, mission: Mission, by_incident: str, now: int) -> list[Decision]:
        """A drone heading home takes new work: its finished mission completes here."""
        entry = self.incidents.get(mission.incident_id)
        reason = f"retasked on its way home to incident {by_incident}"
        decisions: list[Decision] = [
            StageReached(
                mission.id, mission.incident_id, mission.drone_id, MissionStage.COMPLETED, now,
                reason,
            )
        ]  # fmt: skip
        self._release(mission)
        if entry is not None and entry.request.patrol_route:
            self.route_flown_ms[entry.request.patrol_route] = now
        self._close_if_done(mission.incident_id, now)
        return decisions

    def _follow(self, mission: Mission, drone: DroneView, now: int) -> list[Decision]:
        """Stage changes and failures of a busy drone's mission."""
        failure = self._failure(drone) if mission.stage in _OUTBOUND else ""
        if failure:
            return self._fail(mission, failure, now)
        if not drone.has_position:
            return []
        entry = self.incidents.get(mission.incident_id)
        scene = (entry.request.lon, entry.request.lat) if entry is not None else None
        distance = math.inf
        if scene is not None:
            assert drone.lon is not None and drone.lat is not None
            distance = math.dist(self._xy(drone.lon, drone.lat), self._xy(*scene))
        stage = observed_stage(
            mission.stage,
            flying_this_mission=drone.reported_mission == mission.id,
            mode=drone.mode,
            distance_to_scene_m=distance,
        )
        if stage is None:
            return []
        mission.stage = stage
        decisions: list[Decision] = [
            StageReached(mission.id, mission.incident_id, mission.drone_id, stage, now)
        ]
        if stage == MissionStage.ON_SCENE:
            self.on_scene.add(mission.incident_id)
        if stage == MissionStage.COMPLETED:
            self._release(mission)
            if entry is not None and entry.request.patrol_route:
                self.route_flown_ms[entry.request.patrol_route] = now
            self._close_if_done(mission.incident_id, now)
        return decisions

    def _fail(self, mission: Mission, reason: str, now: int) -> list[Decision]:
        decisions: list[Decision] = [
            Redispatched(mission.incident_id, mission.id, mission.drone_id, mission.slot, reason),
        ]
        decisions.extend(self._end(mission, MissionStage.FAILED, now, reason))
        entry = self.incidents.get(mission.incident_id)
        if entry is None:
            return decisions
        if entry.request.patrol_route:
            self._drop(mission.incident_id)
            return decisions
        entry.open_slots.add(mission.slot)
        decisions.extend(self._serve(entry, now, report_queued=True))
        return decisions

    def _end(self, mission: Mission, stage: MissionStage, now: int, reason: str) -> list[Decision]:
        """Stop a mission early: it ends in stage and its drone is sent to the nearest nest."""
        self._release(mission)
        drone = self.drones.get(mission.drone_id)
        nest_id = drone.home_nest if drone is not None else ""
        if drone is not None and drone.has_position and self._online_xy:
            assert drone.lon is not None and drone.lat is not None
            nest_id = self._nearest_online(self._xy(drone.lon, drone.lat))
        return [
            StageReached(mission.id, mission.incident_id, mission.drone_id, stage, now, reason),
            DroneOrder(
                mission.incident_id, mission.id, mission.drone_id, OrderKind.RETURN, nest_id=nest_id
            ),
        ]

    def _release(self, mission: Mission) -> None:
        self.missions.pop(mission.id, None)
        if self.busy.get(mission.drone_id) == mission.id:
            del self.busy[mission.drone_id]
        drone = self.drones.get(mission.drone_id)
        if drone is not None:
            self._reindex(drone)

    def _close_if_done(self, incident_id: str, now: int) -> None:
        entry = self.incidents.get(incident_id)
        if entry is not None and not self._live(entry):
            self._drop(incident_id)

    def _drop(self, incident_id: str) -> None:
        """An incident closes: what the core kept about it goes, except its id (and its
        duplicates' ids), kept for the replay horizon."""
        self.incidents.pop(incident_id, None)
        self.on_scene.discard(incident_id)
        for kind in SlaAlertKind:
            self.alerted.discard((incident_id, kind))
        closed = [incident_id, *(d for d, p in self.links.items() if p == incident_id)]
        for closed_id in closed:
            self.links.pop(closed_id, None)
            if closed_id in self.seen_incidents:
                self._closed.pop(closed_id, None)  # keeps the dict ordered by time
                self._closed[closed_id] = self.now_ms

    def _live(self, entry: IncidentSlots) -> bool:
        return bool(entry.open_slots) or bool(self._missions_of(entry.request.id))

    def _missions_of(self, incident_id: str) -> list[Mission]:
        return sorted(
            (m for m in self.missions.values() if m.incident_id == incident_id), key=lambda m: m.id
        )

    def _best_remaining_eta(self, incident_id: str, missions: list[Mission]) -> float:
        entry = self.incidents[incident_id]
        best = math.inf
        for mission in missions:
            drone = self.drones.get(mission.drone_id)
            if drone is None or not drone.has_position:
                continue
            started = mission.stage != MissionStage.ASSIGNED
            flying = replace(drone, airborne=drone.airborne or started)
            best = min(best, self.estimate_for(flying, entry.request).eta_seconds)
        return best

    # -- patrols ---------------------------------------------------------------------------------

    def _start_patrols(self, now: int) -> list[Decision]:
        if not self.routes:
            return []
        flying = {e.request.patrol_route for e in self.incidents.values() if e.request.patrol_route}
        due = sorted(
            (r for r in self.routes.values() if r.id not in flying),
            key=lambda r: (self.route_flown_ms.get(r.id, 0), r.id),
        )
        if not due:
            return []
        if any(e.open_slots for e in self.incidents.values()):
            return []  # incidents wait: idle drones are theirs, not the patrols'
        docked: dict[str, list[DroneView]] = {}
        for drone_id in sorted([*self.live.where, *self.cards.where]):
            drone = self.drones[drone_id]
            if not drone.airborne:
                docked.setdefault(drone.home_nest, []).append(drone)
        decisions: list[Decision] = []
        interval_ms = self.settings.patrol_interval_s * 1000
        for route in due:
            last = self.route_flown_ms.get(route.id)
            if last is not None and now - last < interval_ms:
                continue
            pool = docked.get(route.nest_id, [])
            if len(pool) <= self.settings.patrol_keep_docked:
                continue
            nest = self.nests.get(route.nest_id)
            if nest is None or not nest.online or nest.weather_hold:
                continue
            pool.sort(key=most_battery_first)
            drone = pool[0]
            flight_s = launch_overhead_s(drone) * 2 + route.length_m / drone.cruise_speed_mps
            if drone.battery_pct - 100.0 * flight_s / drone.endurance_s < self.reserve_pct:
                continue
            pool.pop(0)
            request = IncidentRequest(
                id=f"patrol-{route.id}-{now}", priority=4, lon=route.waypoints[0][0],
                lat=route.waypoints[0][1], required_capabilities=frozenset(), drones_needed=1,
                on_scene_seconds=0, accepted_ms=now, type="routine_inspection",
                department="airgrid", patrol_route=route.id,
            )  # fmt: skip
            self.seen_incidents.add(request.id)
            entry = IncidentSlots(request, open_slots={0})
            self.incidents[request.id] = entry
            mission_id = mission_id_for(request.id, 0, 0)
            self.missions[mission_id] = Mission(
                mission_id, request.id, drone.id, 0, MissionStage.ASSIGNED, 0.0, now
            )
            self.busy[drone.id] = mission_id
            self._unindex(drone.id)
            entry.open_slots.clear()
            entry.attempts = 1
            assignment = Assignment(
                mission_id, drone.id, 0, 0.0, drone.home_nest, route.waypoints, False
            )
            decisions.append(PatrolStarted(request, route.id))
            decisions.append(Assigned(request.id, (assignment,), True))
            decisions.append(self._order_to_scene(request, assignment))
        return decisions

    # -- internals -------------------------------------------------------------------------------

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

    def _duplicate_of(self, incident: IncidentRequest) -> IncidentSlots | None:
        if not incident.type or incident.patrol_route:
            return None
        here = self._xy(incident.lon, incident.lat)
        window_ms = self.settings.duplicate_window_s * 1000
        best: tuple[float, str] | None = None
        for other_id, entry in self.incidents.items():
            other = entry.request
            if (
                other.type != incident.type
                or other.patrol_route
                or not other.department
                or other.department == incident.department
                or abs(other.accepted_ms - incident.accepted_ms) > window_ms
            ):
                continue
            d = math.dist(here, self._xy(other.lon, other.lat))
            if d <= self.settings.duplicate_radius_m and (best is None or (d, other_id) < best):
                best = (d, other_id)
        return self.incidents[best[1]] if best is not None else None

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


def _queue_key(entry: IncidentSlots) -> tuple[int, int, str]:
    """Queue order: rank (priority, patrols last), then age, then id."""
    return (entry.rank, entry.request.accepted_ms, entry.request.id)


def _same_availability(a: DroneView, b: DroneView) -> bool:
    return (
        a.link_ok == b.link_ok
        and a.active == b.active
        and a.faults == b.faults
        and a.has_position == b.has_position
        and a.airborne == b.airborne
        and abs(a.battery_pct - b.battery_pct) < 5.0
    )


def _why(incident: IncidentRequest, infeasible: list[Estimate], feasible_left: int) -> str:
    if feasible_left:
        return "not enough idle drones for every slot"
    if not infeasible:
        needs = ", ".join(sorted(incident.required_capabilities)) or "any capability"
        return f"no idle drone with {needs}"
    reasons = Counter(c.reason for c in infeasible)
    reason, _ = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return f"no feasible drone: {reason}"
