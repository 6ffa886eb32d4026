"""Relays: an incident that needs a drone on scene longer than one can stay is covered by a
chain of drones. On each clock tick the core plans the relief of every drone on scene that
must turn home (with its reserve) before the incident's time on scene is over; the relief
hands over on arrival and the drone it relieves is sent home."""

from __future__ import annotations

import math
from dataclasses import replace

from services.dispatch.domain.incident_queue import IncidentQueue, hold_seconds
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
    SlaAlert,
    SlaAlertKind,
    StageReached,
    mission_id_for,
)
from services.dispatch.domain.selection import Candidate, best_first, kth_best

# The incident's reason while no drone can relieve the one on scene in time.
RELAY_AT_RISK_REASON = "relay at risk: no drone can relieve the one on scene in time"


class Relays(IncidentQueue):
    """Reliefs planned on the clock, handed over on scene."""

    def must_leave_ms(self, mission: Mission) -> float:
        """When the drone of a mission on scene must turn home to land with its reserve, from
        its latest report: its battery above the reserve less the way to the nearest nest."""
        drone = self.drones.get(mission.drone_id)
        entry = self.incidents.get(mission.incident_id)
        if drone is None or entry is None:
            return -math.inf
        _, back_m = self._prepare(entry.request)
        back_s = back_m / drone.cruise_speed_mps + drone.cruise_altitude_m / drone.climb_rate_mps
        usable_s = (drone.battery_pct - self.reserve_pct) / 100.0 * drone.endurance_s
        return self.now_ms + (usable_s - back_s) * 1000.0

    def scene_until_ms(self, entry: IncidentSlots) -> float:
        """Until when the incident needs drones on scene (from the first arrival)."""
        if entry.scene_since_ms < 0:
            return math.inf
        return entry.scene_since_ms + entry.request.on_scene_seconds * 1000.0

    def _plan_reliefs(self, now: int) -> list[Decision]:
        """Reliefs due now, most urgent incident first. Waiting incidents that rank before a
        relayed one are served first, so a relief never takes a drone they could have."""
        due: list[tuple[tuple[int, int, str], Mission, IncidentSlots, float]] = []
        relieved = {m.relieves for m in self.missions.values() if m.relieves}
        for mission in sorted(self.missions.values(), key=lambda m: m.id):
            if mission.stage != MissionStage.ON_SCENE or mission.id in relieved:
                continue
            entry = self.incidents.get(mission.incident_id)
            if entry is None or entry.request.patrol_route or entry.scene_since_ms < 0:
                continue
            leave = self.must_leave_ms(mission)
            if leave >= self.scene_until_ms(entry):
                continue  # this drone stays to the end
            key = (entry.rank, entry.request.accepted_ms, entry.request.id)
            due.append((key, mission, entry, leave))
        if not due:
            return []
        decisions: list[Decision] = []
        if any(e.open_slots for e in self.incidents.values()):
            decisions.extend(self.drain_queue())
        for _, mission, entry, leave in sorted(due, key=lambda d: (d[0], d[1].id)):
            if (
                self.missions.get(mission.id) is not mission
                or mission.stage != MissionStage.ON_SCENE
            ):
                continue  # preempted or failed while the queue was served
            decisions.extend(self._relieve(mission, entry, leave, now))
        return decisions

    def _relieve(
        self, holder: Mission, entry: IncidentSlots, leave_ms: float, now: int
    ) -> list[Decision]:
        incident = entry.request
        left_s = (self.scene_until_ms(entry) - now) / 1000.0
        need = replace(incident, on_scene_seconds=max(1, math.ceil(left_s)))
        idle, _ = self._search(need, 1)
        spare = self._spare(need, kth_best([c.key for c in idle], 1))
        pool = [c for c in best_first([*idle, *spare]) if c.estimate.drone_id != holder.drone_id]
        time_left_s = (leave_ms - now) / 1000.0
        alert_key = (incident.id, SlaAlertKind.RELAY_AT_RISK)
        decisions: list[Decision] = []
        if not pool or pool[0].estimate.eta_seconds > time_left_s:
            eta = pool[0].estimate.eta_seconds if pool else math.inf
            if time_left_s <= self.settings.relay_alert_s + (0.0 if not pool else eta):
                entry.reason = RELAY_AT_RISK_REASON
                if alert_key not in self.alerted:
                    self.alerted.add(alert_key)
                    kind = SlaAlertKind.RELAY_AT_RISK
                    decisions.append(SlaAlert(incident.id, kind, eta, time_left_s, now, holder.id))
            if not pool:
                return decisions
        pick = pool[0]
        if pick.estimate.eta_seconds + self.settings.relay_lead_s < time_left_s:
            return decisions  # not yet: the relief would wait on scene, burning its battery
        decisions.extend(self._launch_relief(holder, entry, need, pick, now))
        return decisions

    def _launch_relief(
        self,
        holder: Mission,
        entry: IncidentSlots,
        need: IncidentRequest,
        pick: Candidate,
        now: int,
    ) -> list[Decision]:
        incident = entry.request
        decisions: list[Decision] = []
        if pick.mission is not None:
            decisions.extend(self._retask(pick.mission, incident.id, now))
        drone = self.drones[pick.estimate.drone_id]
        slot = self._relief_slot(holder, entry)
        mission_id = mission_id_for(incident.id, slot, entry.attempts)
        entry.attempts += 1
        mission = Mission(
            mission_id, incident.id, drone.id, slot, MissionStage.ASSIGNED,
            round(pick.estimate.eta_seconds, 1), now, relieves=holder.id,
        )  # fmt: skip
        self.missions[mission_id] = mission
        self.busy[drone.id] = mission_id
        self._unindex(drone.id)
        path = self.path_to(drone, incident.lon, incident.lat)
        a = Assignment(
            mission_id, drone.id, slot, mission.eta_seconds, drone.home_nest, path,
            drone.airborne, relieves=holder.id,
        )  # fmt: skip
        if entry.reason == RELAY_AT_RISK_REASON:
            entry.reason = ""
        self.alerted.discard((incident.id, SlaAlertKind.RELAY_AT_RISK))
        decisions.append(Assigned(incident.id, (a,), True))
        decisions.append(self._order_to_scene(incident, a, hold_seconds(need, pick.estimate)))
        return decisions

    def _relief_slot(self, holder: Mission, entry: IncidentSlots) -> int:
        """A slot number of the holder's chain that no active mission of the incident has
        (slot, slot + drones_needed, ...): the relieved drone still flies home on its own,
        and every active mission keeps a slot of its own, as the database requires."""
        n = entry.request.drones_needed
        taken = {m.slot for m in self.missions.values() if m.incident_id == entry.request.id}
        slot = holder.slot % n
        while slot in taken:
            slot += n
        return slot

    def _hand_over(self, relief: Mission, now: int) -> list[Decision]:
        """A relief reached the scene: the drone it relieves is sent home."""
        held = self.missions.get(relief.relieves)
        relief.relieves = ""
        if held is None or held.stage not in (MissionStage.ON_SCENE, MissionStage.LAUNCHED):
            return []
        held.stage = MissionStage.RETURNING
        drone = self.drones.get(held.drone_id)
        nest_id = drone.home_nest if drone is not None else ""
        if drone is not None and drone.has_position and self._online_xy:
            assert drone.lon is not None and drone.lat is not None
            nest_id = self._nearest_online(self._xy(drone.lon, drone.lat))
        reason = f"relieved on scene by mission {relief.id}"
        return [
            StageReached(held.id, held.incident_id, held.drone_id, held.stage, now, reason),
            DroneOrder(held.incident_id, held.id, held.drone_id, OrderKind.RETURN, nest_id=nest_id),
        ]
