"""The search for drones to serve an incident: idle drones best first (run cards and the
live grid), drones whose work yields, and drones an urgent incident may take."""

from __future__ import annotations

import heapq
import math

from services.dispatch.domain.core_state import OUTBOUND
from services.dispatch.domain.eta import Estimate, estimate, launch_overhead_s
from services.dispatch.domain.mission_book import MissionBook
from services.dispatch.domain.model import (
    DroneView,
    IncidentRequest,
    IncidentSlots,
    Mission,
    MissionStage,
)
from services.dispatch.domain.nofly import Target
from services.dispatch.domain.run_cards import SITE_RADIUS_M, DockedGroup
from services.dispatch.domain.selection import (
    NO_KEY,
    Candidate,
    RankKey,
    best_first,
    kth_best,
    least_key,
    may_improve,
    rank_key,
    settled,
    unranked_order,
)

# What a search heap entry stands for: a launch group, a live grid cell, or (None) the
# drone its key names.
_Entry = DockedGroup | tuple[int, int] | None


class DroneSearch(MissionBook):
    """Estimates and candidates; how one is chosen among them is selection.py's."""

    def candidates(self, incident: IncidentRequest, need: int = 1) -> list[Estimate]:
        """The best idle drones' estimates (feasible first, least ETA, then most battery)."""
        found, seen = self._search(incident, need)
        return [c.estimate for c in best_first(found)] + unranked_order(seen)

    def estimate_for(self, drone: DroneView, incident: IncidentRequest) -> Estimate:
        """The core's own estimate, detours and nearest-nest return included."""
        target, back_m = self._prepare(incident)
        return self._estimate(drone, incident, target, back_m)[0]

    def _min_stay(self, incident: IncidentRequest) -> float | None:
        """The least useful stay of a relay link, for incidents long enough to be relayed
        (judged by the time on scene first asked for: a relief is asked for what is left)."""
        entry = self.incidents.get(incident.id)
        asked = (entry.request if entry is not None else incident).on_scene_seconds
        if incident.patrol_route or asked < self.settings.relay_from_s:
            return None
        return self.settings.relay_min_on_scene_s

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

    def _estimate(
        self, drone: DroneView, incident: IncidentRequest, target: Target, back_m: float
    ) -> tuple[Estimate, float]:
        if not drone.has_position:
            found = estimate(
                drone, incident, self.nests, reserve_pct=self.reserve_pct,
                min_on_scene_s=self._min_stay(incident),
            )  # fmt: skip
            return found, math.inf
        assert drone.lon is not None and drone.lat is not None
        path_m = self.planner().length_m(self._xy(drone.lon, drone.lat), target)
        found = estimate(
            drone, incident, self.nests, reserve_pct=self.reserve_pct, path_m=path_m,
            back_m=back_m, min_on_scene_s=self._min_stay(incident),
        )  # fmt: skip
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
                                min_on_scene_s=self._min_stay(incident),
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
        min_stay = self._min_stay(incident)
        taken = 0
        for i, drone in enumerate(group.ordered()):
            if not needs <= drone.capabilities:
                continue
            found = estimate(
                drone, incident, self.nests, reserve_pct=self.reserve_pct,
                path_m=path_m, back_m=back_m, min_on_scene_s=min_stay,
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
        return owner is not None and bool(owner.request.patrol_route) and mission.stage in OUTBOUND

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
            if owner is None or owner is entry or mission.stage not in OUTBOUND:
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
