"""The dispatch state machine: incidents, drone states and clock ticks in; decisions out.

DispatchCore is the one entry point. It is built in layers, each a module of its own and each
using only those below it:

- core_state.py: what the core holds, geometry, the area, the idle-drone index, the clock;
- mission_book.py: missions ending and incidents closing;
- drone_search.py: the drones that could serve an incident, best first;
- incident_queue.py: the waiting incidents, assignment, preemption and re-dispatch;
- relays.py: the chain of drones over an incident longer than one drone can stay;
- fresh_patrols.py: sorties over the cells the inspection plans find overdue;
- sla_and_patrols.py: what a clock tick decides;
- core.py (here): the inputs (registry changes, drone reports, incidents, a restore).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.dispatch.domain.core_state import OUTBOUND, CoreSettings, OutOfArea
from services.dispatch.domain.model import (
    Decision,
    DroneView,
    IncidentRequest,
    IncidentSlots,
    Linked,
    Mission,
    MissionStage,
    NestView,
    SlaAlertKind,
    StageReached,
)
from services.dispatch.domain.nofly import NoFlyZone
from services.dispatch.domain.patrols import PatrolRoute
from services.dispatch.domain.sla_and_patrols import SlaAndPatrols
from services.dispatch.domain.stages import observed_stage

__all__ = ["CoreSettings", "DispatchCore", "OutOfArea"]


class DispatchCore(SlaAndPatrols):
    """Deterministic: the same sequence of calls always yields the same decisions.

    It holds which drone flies which mission and which incidents wait. Time enters only as
    values carried by the inputs (now_ms); the core keeps the latest it has seen.
    """

    # -- inputs: world -----------------------------------------------------------------------

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

    def _follow(self, mission: Mission, drone: DroneView, now: int) -> list[Decision]:
        """Stage changes and failures of a busy drone's mission."""
        failure = self._failure(drone) if mission.stage in OUTBOUND else ""
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
            if entry is not None and entry.scene_since_ms < 0:
                entry.scene_since_ms = now
            if mission.relieves:
                decisions.extend(self._hand_over(mission, now))
        if stage == MissionStage.COMPLETED:
            self._release(mission)
            if entry is not None and entry.request.patrol_route:
                self.route_flown_ms[entry.request.patrol_route] = now
            self._close_if_done(mission.incident_id, now)
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
        links: dict[str, tuple[str, int]] | None = None,
        on_scene: Iterable[str] = (),
        done_slots: dict[str, set[int]] | None = None,
        alerted: Iterable[tuple[str, SlaAlertKind]] = (),
        scene_since_ms: dict[str, int] | None = None,
    ) -> None:
        """Rebuild after a restart from the database: live incidents, active missions, how
        many missions each incident had (so new mission ids never collide), links (each
        duplicate's primary and the duplicate's own priority, which raises the primary's rank
        as it did when the link was made), the slots whose mission was flown to the end
        (they are done, never flown again) and when a drone first reached each incident's
        scene (a relay chain's end is counted from it). A relief (Mission.relieves) keeps
        its link while it is on its way and the mission it relieves is still active; one
        on scene has handed over already."""
        for incident in incidents:
            self.seen_incidents.add(incident.id)
            done = {s % incident.drones_needed for s in (done_slots or {}).get(incident.id, ())}
            self.incidents[incident.id] = IncidentSlots(
                incident,
                open_slots=set(range(incident.drones_needed)) - done,
                attempts=(attempts or {}).get(incident.id, 0),
                scene_since_ms=(scene_since_ms or {}).get(incident.id, -1),
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
                entry.open_slots.discard(m.slot % entry.request.drones_needed)
                if attempts is None:
                    entry.attempts += 1
            if m.stage in (MissionStage.ON_SCENE, MissionStage.RETURNING):
                self.on_scene.add(m.incident_id)
        for m in self.missions.values():
            on_its_way = m.stage in (MissionStage.ASSIGNED, MissionStage.LAUNCHED)
            if m.relieves and (not on_its_way or m.relieves not in self.missions):
                m.relieves = ""
        for duplicate, (primary, priority) in (links or {}).items():
            self.seen_incidents.add(duplicate)
            self.links[duplicate] = primary
            linked = self.incidents.get(primary)
            if linked is not None and priority < linked.rank:
                linked.rank = priority
        self.on_scene.update(on_scene)
        self.alerted.update(alerted)  # SLA alerts raised before the restart are not raised again
        for incident_id in [i for i, e in self.incidents.items() if not self._live(e)]:
            self._drop(incident_id)
        self.alerted = {a for a in self.alerted if a[0] in self.incidents}

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

    # -- queries -----------------------------------------------------------------------------

    @property
    def mission_drone(self) -> dict[str, str]:
        return {m.id: m.drone_id for m in self.missions.values()}

    @property
    def mission_incident(self) -> dict[str, str]:
        return {m.id: m.incident_id for m in self.missions.values()}


def _same_availability(a: DroneView, b: DroneView) -> bool:
    return (
        a.link_ok == b.link_ok
        and a.active == b.active
        and a.faults == b.faults
        and a.has_position == b.has_position
        and a.airborne == b.airborne
        and abs(a.battery_pct - b.battery_pct) < 5.0
    )
