"""The waiting incidents: the order they are served in, the assignment of drones to their
slots (taking a drone heading home or preempting one when that is the way), and the
re-dispatch of a failed mission's slot."""

from __future__ import annotations

from collections import Counter

from services.dispatch.domain.drone_search import DroneSearch
from services.dispatch.domain.eta import Estimate
from services.dispatch.domain.model import (
    Assigned,
    Assignment,
    Decision,
    DroneOrder,
    IncidentRequest,
    IncidentSlots,
    Mission,
    MissionStage,
    OrderKind,
    Preempted,
    Queued,
    Redispatched,
    StageReached,
    mission_id_for,
)
from services.dispatch.domain.selection import best_first, choose, kth_best


class IncidentQueue(DroneSearch):
    """Serving the queue: each try assigns what it can and queues the rest with a reason."""

    def queued_incidents(self) -> list[IncidentSlots]:
        waiting = [e for e in self.incidents.values() if e.open_slots]
        return sorted(waiting, key=_queue_key)

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
        holds: dict[str, int] = {}  # mission -> seconds on scene, for relay links
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
            holds[mission_id] = hold_seconds(incident, pick.estimate)
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
                decisions.append(self._order_to_scene(incident, a, holds[a.mission_id]))
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

    def _order_to_scene(
        self, incident: IncidentRequest, a: Assignment, hold_s: int | None = None
    ) -> DroneOrder:
        if incident.patrol_route:
            route = self.routes.get(incident.patrol_route) or self.fresh_routes.get(
                incident.patrol_route
            )
            path = route.waypoints if route is not None else ()
            return DroneOrder(
                incident.id, a.mission_id, a.drone_id, OrderKind.LAUNCH,
                path[-1] if path else None, path, 1, a.from_nest_id,  # 1 s there, then home
            )  # fmt: skip
        kind = OrderKind.GOTO if a.airborne else OrderKind.LAUNCH
        return DroneOrder(
            incident.id, a.mission_id, a.drone_id, kind, (incident.lon, incident.lat), a.path,
            incident.on_scene_seconds if hold_s is None else hold_s, a.from_nest_id,
        )  # fmt: skip

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
        if self._slot_still_covered(mission):
            return decisions  # a relief: the drone on scene still holds the slot
        owner.open_slots.add(mission.slot % owner.request.drones_needed)
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
        if self._slot_still_covered(mission):
            return decisions  # the next tick plans another relief when one is due
        entry.open_slots.add(mission.slot % entry.request.drones_needed)
        decisions.extend(self._serve(entry, now, report_queued=True))
        return decisions

    def _slot_still_covered(self, ended: Mission) -> bool:
        """After a mission of a relay chain ends early: whether another mission still holds
        its place (the drone on scene when a relief ends, the relief when the drone on scene
        ends, which then becomes the holder). A relief has a slot number of its own (the
        base slot plus a multiple of drones_needed)."""
        for other in self.missions.values():
            if other.incident_id != ended.incident_id:
                continue
            if other.relieves == ended.id:
                other.relieves = ""
                return True
            if ended.relieves == other.id:
                return True
        return False


def hold_seconds(incident: IncidentRequest, found: Estimate) -> int:
    """The time on scene a drone is ordered to hold: the whole stay, or a relay link's."""
    return min(incident.on_scene_seconds, max(0, int(found.stay_seconds)))


def _queue_key(entry: IncidentSlots) -> tuple[int, int, str]:
    """Queue order: rank (priority, patrols last), then age, then id."""
    return (entry.rank, entry.request.accepted_ms, entry.request.id)


def _why(incident: IncidentRequest, infeasible: list[Estimate], feasible_left: int) -> str:
    if feasible_left:
        return "not enough idle drones for every slot"
    if not infeasible:
        needs = ", ".join(sorted(incident.required_capabilities)) or "any capability"
        return f"no idle drone with {needs}"
    reasons = Counter(c.reason for c in infeasible)
    reason, _ = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return f"no feasible drone: {reason}"
