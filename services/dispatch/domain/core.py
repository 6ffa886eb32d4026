"""The dispatch state machine: incidents and drone updates in, assignment decisions out."""

from __future__ import annotations

from collections import Counter

from services.dispatch.domain.eta import Estimate, estimate
from services.dispatch.domain.model import (
    Assigned,
    Assignment,
    Decision,
    DroneView,
    IncidentRequest,
    IncidentSlots,
    NestView,
    Queued,
    mission_id_for,
)


class DispatchCore:
    """Deterministic: the same sequence of calls always yields the same decisions.

    It holds which drone flies which mission and which incidents wait. The caller persists
    decisions and feeds back what happened (missions ended, drones moved); time never enters
    except as values carried by the inputs.
    """

    def __init__(self, *, reserve_pct: float = 20.0) -> None:
        self.reserve_pct = reserve_pct
        self.drones: dict[str, DroneView] = {}
        self.nests: dict[str, NestView] = {}
        self.busy: dict[str, str] = {}  # drone id -> mission id
        self.mission_drone: dict[str, str] = {}  # mission id -> drone id
        self.mission_incident: dict[str, str] = {}  # mission id -> incident id
        self.incidents: dict[str, IncidentSlots] = {}
        self.seen_incidents: set[str] = set()  # every incident ever accepted: replays are no-ops

    # -- inputs ------------------------------------------------------------------------

    def upsert_nest(self, nest: NestView) -> list[Decision]:
        self.nests[nest.id] = nest
        return self.drain_queue()

    def upsert_drone(self, drone: DroneView) -> list[Decision]:
        previous = self.drones.get(drone.id)
        self.drones[drone.id] = drone
        if drone.id in self.busy or not self.queued_incidents():
            return []
        if previous is not None and _same_availability(previous, drone):
            return []
        return self.drain_queue()

    def accept(self, incident: IncidentRequest) -> list[Decision]:
        """A new incident; a replay of a known one decides nothing again."""
        if incident.id in self.seen_incidents:
            return []
        self.seen_incidents.add(incident.id)
        self.incidents[incident.id] = IncidentSlots(
            incident, open_slots=set(range(incident.drones_needed))
        )
        return self._try_assign(self.incidents[incident.id])

    def cancel(self, incident_id: str) -> list[str]:
        """Forget an incident; returns the missions whose drones must come back."""
        self.incidents.pop(incident_id, None)
        missions = sorted(m for m, i in self.mission_incident.items() if i == incident_id)
        for mission_id in missions:
            self._free(mission_id)
        return missions

    def mission_ended(self, mission_id: str) -> list[Decision]:
        """The drone of a mission is back and free; waiting incidents may now get it."""
        self._free(mission_id)
        return self.drain_queue()

    def restore(
        self,
        *,
        incidents: list[IncidentRequest],
        missions: list[tuple[str, str, str, int]],
    ) -> None:
        """Rebuild after a restart from the database: open incidents and active missions
        as (mission id, incident id, drone id, slot)."""
        for incident in incidents:
            self.seen_incidents.add(incident.id)
            self.incidents[incident.id] = IncidentSlots(
                incident, open_slots=set(range(incident.drones_needed))
            )
        for mission_id, incident_id, drone_id, slot in missions:
            self.busy[drone_id] = mission_id
            self.mission_drone[mission_id] = drone_id
            self.mission_incident[mission_id] = incident_id
            entry = self.incidents.get(incident_id)
            if entry is not None:
                entry.open_slots.discard(slot)
                entry.attempts += 1
        for incident_id in [i for i, e in self.incidents.items() if not e.open_slots]:
            del self.incidents[incident_id]

    # -- queries -----------------------------------------------------------------------

    def queued_incidents(self) -> list[IncidentSlots]:
        waiting = [e for e in self.incidents.values() if e.open_slots]
        return sorted(
            waiting, key=lambda e: (e.request.priority, e.request.accepted_ms, e.request.id)
        )

    def candidates(self, incident: IncidentRequest) -> list[Estimate]:
        """Every idle, capable drone's estimate, best first (least ETA, then most battery)."""
        found = []
        for drone in self.drones.values():
            if not self._idle(drone) or not incident.required_capabilities <= drone.capabilities:
                continue
            found.append(estimate(drone, incident, self.nests, reserve_pct=self.reserve_pct))
        found.sort(key=lambda e: (not e.feasible, e.eta_seconds, -e.battery_after_pct, e.drone_id))
        return found

    # -- internals ---------------------------------------------------------------------

    def drain_queue(self) -> list[Decision]:
        decisions: list[Decision] = []
        for entry in self.queued_incidents():
            decisions.extend(d for d in self._try_assign(entry) if isinstance(d, Assigned))
        return decisions

    def _try_assign(self, entry: IncidentSlots) -> list[Decision]:
        incident = entry.request
        candidates = self.candidates(incident)
        feasible = [c for c in candidates if c.feasible]
        assignments: list[Assignment] = []
        for slot in sorted(entry.open_slots):
            if not feasible:
                break
            best = feasible.pop(0)
            drone = self.drones[best.drone_id]
            mission_id = mission_id_for(incident.id, slot, entry.attempts)
            self.busy[drone.id] = mission_id
            self.mission_drone[mission_id] = drone.id
            self.mission_incident[mission_id] = incident.id
            assignments.append(
                Assignment(mission_id, drone.id, slot, round(best.eta_seconds, 1), drone.home_nest)
            )
        for assignment in assignments:
            entry.open_slots.discard(assignment.slot)
        if assignments:
            entry.attempts += 1
        decisions: list[Decision] = []
        if assignments:
            decisions.append(Assigned(incident.id, tuple(assignments), not entry.open_slots))
        if entry.open_slots:
            decisions.append(
                Queued(incident.id, tuple(sorted(entry.open_slots)), _why(incident, candidates))
            )
        else:
            del self.incidents[incident.id]
        return decisions

    def _idle(self, drone: DroneView) -> bool:
        return (
            drone.active
            and drone.link_ok
            and not drone.faults
            and drone.id not in self.busy
            and drone.has_position
        )

    def _free(self, mission_id: str) -> None:
        self.mission_incident.pop(mission_id, None)
        drone_id = self.mission_drone.pop(mission_id, None)
        if drone_id is not None and self.busy.get(drone_id) == mission_id:
            del self.busy[drone_id]


def _same_availability(a: DroneView, b: DroneView) -> bool:
    return (
        a.link_ok == b.link_ok
        and a.active == b.active
        and a.faults == b.faults
        and a.has_position == b.has_position
        and abs(a.battery_pct - b.battery_pct) < 5.0
    )


def _why(incident: IncidentRequest, candidates: list[Estimate]) -> str:
    if not candidates:
        needs = ", ".join(sorted(incident.required_capabilities)) or "any capability"
        return f"no idle drone with {needs}"
    reasons = Counter(c.reason for c in candidates if not c.feasible)
    if not reasons:
        return "not enough idle drones for every slot"
    reason, _ = reasons.most_common(1)[0]
    return f"no feasible drone: {reason}"
