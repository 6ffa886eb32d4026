"""What a clock tick decides: SLA at-risk and breach alerts, reliefs of relay chains, then
patrol sorties for idle drones: freshness-driven once inspection plans are known, the
lawn-mower routes before."""

from __future__ import annotations

import math
from dataclasses import replace

from services.dispatch.domain.fresh_patrols import FreshPatrols, battery_after_pct
from services.dispatch.domain.model import (
    Decision,
    Mission,
    MissionStage,
    SlaAlert,
    SlaAlertKind,
)
from services.dispatch.domain.selection import most_battery_first


class SlaAndPatrols(FreshPatrols):
    """The clock's work: alerts once per incident and kind, patrols only when nothing waits."""

    def tick(self, now_ms: int) -> list[Decision]:
        """Clock tick: SLA at-risk and breach alerts, reliefs due, then patrols for idle
        drones."""
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
        decisions.extend(self._plan_reliefs(now))
        decisions.extend(self._start_patrols(now))
        return decisions

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

    def _start_patrols(self, now: int) -> list[Decision]:
        if self.freshness.planned:
            if any(e.open_slots for e in self.incidents.values()):
                return []  # incidents wait: idle drones are theirs, not the patrols'
            return self._start_fresh_patrols(now, self.patrol_budget)
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
        docked = self._docked_pools()
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
            if battery_after_pct(drone, route.length_m) < self.reserve_pct:
                continue
            pool.pop(0)
            decisions.extend(self._launch_patrol(route, drone, now))
        return decisions
