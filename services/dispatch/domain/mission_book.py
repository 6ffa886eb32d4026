"""Missions ending and incidents closing: what the core forgets, and what it keeps of a
closed incident (its id, for the replay horizon)."""

from __future__ import annotations

from services.dispatch.domain.core_state import CoreState
from services.dispatch.domain.model import (
    Decision,
    DroneOrder,
    IncidentSlots,
    Mission,
    MissionStage,
    OrderKind,
    SlaAlertKind,
    StageReached,
)


class MissionBook(CoreState):
    """Releasing a mission's drone, ending a mission early, closing an incident."""

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
