"""Patrol launches, and the freshness-driven sorties a tick starts once inspection plans are
known: per nest with a drone to spare, a sortie over the heaviest overdue cells its battery
can fly (fresh_sorties.py chooses the cells)."""

from __future__ import annotations

from services.dispatch.domain.eta import launch_overhead_s
from services.dispatch.domain.fresh_sorties import (
    FreshnessView,
    loop_m,
    overdue_weights,
    plan_sortie,
)
from services.dispatch.domain.model import (
    Assigned,
    Assignment,
    Decision,
    DroneView,
    IncidentRequest,
    IncidentSlots,
    Mission,
    MissionStage,
    PatrolStarted,
    mission_id_for,
)
from services.dispatch.domain.patrols import PatrolRoute
from services.dispatch.domain.relays import Relays
from services.dispatch.domain.selection import most_battery_first

XY = tuple[float, float]


def sortie_range_m(drone: DroneView, reserve_pct: float) -> float:
    """The longest loop the drone can fly from its nest and land with the reserve left:
    launch and climb out, landing back (counted like the climb), cruise for the rest."""
    flight_s = (drone.battery_pct - reserve_pct) / 100.0 * drone.endurance_s
    return (flight_s - 2.0 * launch_overhead_s(drone)) * drone.cruise_speed_mps


def battery_after_pct(drone: DroneView, length_m: float) -> float:
    """Battery left after a patrol loop of length_m from the nest (the lawn-mower rule)."""
    flight_s = launch_overhead_s(drone) * 2 + length_m / drone.cruise_speed_mps
    return drone.battery_pct - 100.0 * flight_s / drone.endurance_s


class FreshPatrols(Relays):
    """Launching a patrol sortie, and choosing freshness-driven ones."""

    def set_freshness(self, view: FreshnessView) -> None:
        """The inspection freshness the next ticks plan sorties from; empty: lawn-mower."""
        self.freshness = view

    def _docked_pools(self) -> dict[str, list[DroneView]]:
        docked: dict[str, list[DroneView]] = {}
        for drone_id in sorted([*self.live.where, *self.cards.where]):
            drone = self.drones[drone_id]
            if not drone.airborne:
                docked.setdefault(drone.home_nest, []).append(drone)
        return docked

    def _launch_patrol(self, route: PatrolRoute, drone: DroneView, now: int) -> list[Decision]:
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
        return [
            PatrolStarted(request, route.id),
            Assigned(request.id, (assignment,), True),
            self._order_to_scene(request, assignment),
        ]

    def _start_fresh_patrols(self, now: int, budget: int | None) -> list[Decision]:
        """Sorties over overdue cells, nest by nest (by id), while the budget lasts. A cell on
        a sortie in flight, or sent within the patrol interval, is not sent again."""
        assert self.projection is not None
        keep = self.settings.patrol_keep_docked
        pools = self._docked_pools()
        if budget == 0 or all(len(pool) <= keep for pool in pools.values()):
            return []  # no sortie can start: spare the weighing of every cell
        interval_ms = self.settings.patrol_interval_s * 1000
        self.cell_sent_ms = {c: t for c, t in self.cell_sent_ms.items() if now - t < interval_ms}
        flying = {e.request.patrol_route for e in self.incidents.values() if e.request.patrol_route}
        claimed = set(self.cell_sent_ms)
        for route_id in flying:
            claimed.update(self.fresh_cells.get(route_id, ()))
        weights = overdue_weights(self.freshness, now)
        cells: dict[int, tuple[float, XY]] = {
            cell: (weight, self.projection.to_xy(lon, lat))
            for cell, (weight, lon, lat) in weights.items()
            if cell not in claimed
        }
        decisions: list[Decision] = []
        started = 0
        for nest_id, pool in sorted(pools.items()):
            nest = self.nests.get(nest_id)
            if nest is None or not nest.online or nest.weather_hold:
                continue
            pool.sort(key=most_battery_first)
            home = self.projection.to_xy(nest.lon, nest.lat)
            while cells and len(pool) > keep:
                if budget is not None and started >= budget:
                    return decisions
                drone = pool[0]
                chosen = plan_sortie(home, cells, sortie_range_m(drone, self.reserve_pct))
                points = [cells[c][1] for c in chosen]
                if not chosen or battery_after_pct(drone, loop_m(home, points)) < self.reserve_pct:
                    break  # the best-charged drone cannot fly it: nor can the others
                pool.pop(0)
                k = 0
                while f"{nest_id}/f{k}" in flying:
                    k += 1
                route = PatrolRoute(
                    f"{nest_id}/f{k}",
                    nest_id,
                    tuple(self.projection.to_lon_lat(*p) for p in points),
                    loop_m(home, points),
                )
                flying.add(route.id)
                self.fresh_routes[route.id] = route
                self.fresh_cells[route.id] = tuple(chosen)
                for cell in chosen:
                    self.cell_sent_ms[cell] = now
                    del cells[cell]
                started += 1
                decisions.extend(self._launch_patrol(route, drone, now))
        return decisions
