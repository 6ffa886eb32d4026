"""Rebalancing: when coverage drops, move idle docked drones between nests to close holes.

A greedy, deterministic planner. Each round it looks at the cells no available drone
reaches; for every usable nest it counts the holes a drone docked there would close (the
gain); for every idle docked drone it counts the cells only that drone reaches (the loss if
it leaves). It sends the donor with the best gain - loss, nearest first on ties, then
updates the counts and looks again, up to a few moves per round. Drones already on their way
count as covering their destination, so two drones are never sent to one hole. The same
planner runs per capability class over the cells that class reaches from home (`area`), so
scarce sensors (zoom, gas, loudspeaker) are spread too. Pure: the caller passes positions,
reaches and the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.dispatch.domain.coverage import CoverageGrid, IntArray, Reacher

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class RebalanceSettings:
    enabled: bool = True
    trigger_ratio: float = 0.995  # below this coverage share the planner moves drones
    max_moves_per_round: int = 3
    max_in_transit: int = 16
    min_battery_pct: float = 60.0  # a donor must arrive able to fly a full SLA mission
    min_net_gain_cells: int = 4  # 4 cells of 250 m = 0.25 km² gained at least
    transit_timeout_s: float = 900.0


@dataclass(frozen=True)
class NestSite:
    """A nest a drone may be sent to: online and not on weather hold."""

    id: str
    x: float
    y: float


@dataclass(frozen=True)
class Donor:
    """An idle, docked, charged drone that may leave its nest."""

    drone_id: str
    nest_id: str
    x: float
    y: float
    reach_m: float
    battery_pct: float


@dataclass(frozen=True)
class Move:
    drone_id: str
    from_nest_id: str
    to_nest_id: str
    gain_cells: int
    loss_cells: int
    distance_m: float


@dataclass
class Rebalancer:
    settings: RebalanceSettings = field(default_factory=RebalanceSettings)
    # drone id -> (destination nest id, since ms): sent and not yet docked there
    in_transit: dict[str, tuple[str, int]] = field(default_factory=dict)

    def settle(self, *, docked_at: dict[str, str], idle: set[str], now_ms: int) -> None:
        """Forget moves that arrived (docked at their destination), whose drone was given a
        mission on the way (no longer idle), or that timed out."""
        timeout_ms = self.settings.transit_timeout_s * 1000
        for drone_id, (nest_id, since) in sorted(self.in_transit.items()):
            arrived = docked_at.get(drone_id) == nest_id
            if arrived or drone_id not in idle or now_ms - since > timeout_ms:
                del self.in_transit[drone_id]

    def plan(
        self,
        *,
        grid: CoverageGrid,
        reachers: Sequence[Reacher],
        donors: Sequence[Donor],
        sites: Sequence[NestSite],
        now_ms: int,
        area: BoolArray | None = None,
        max_moves: int | None = None,
    ) -> list[Move]:
        """The moves to make now (each recorded as in transit); empty when coverage is fine.

        area: the cells that count (default: the whole zone), e.g. the cells a capability's
        drones reach from their home nests; reachers and donors are then that class's. At
        most max_moves moves (default: the round's limit)."""
        if not self.settings.enabled or not sites:
            return []
        limit = self.settings.max_moves_per_round if max_moves is None else max_moves
        mask: BoolArray = np.ones(len(grid), dtype=bool) if area is None else area
        wanted = int(mask.sum())
        if wanted == 0 or limit <= 0:
            return []
        sites_by_id = {s.id: s for s in sites}
        members = {r.drone_id for r in reachers} | {d.drone_id for d in donors}
        in_transit = set(self.in_transit)
        standing = [r for r in reachers if r.drone_id not in in_transit]
        counts = grid.counts(standing)
        # Drones on their way (of this class) cover their destination already.
        typical = _typical_reach(reachers)
        for drone_id, (nest_id, _) in self.in_transit.items():
            site = sites_by_id.get(nest_id)
            if site is not None and (area is None or drone_id in members):
                counts += grid.reached_by(site.x, site.y, typical)
        moves: list[Move] = []
        pool = sorted(
            (
                d
                for d in donors
                if d.drone_id not in in_transit
                and d.battery_pct >= self.settings.min_battery_pct
                and d.reach_m > 0
            ),
            key=lambda d: d.drone_id,
        )
        while len(moves) < limit and len(self.in_transit) < self.settings.max_in_transit and pool:
            covered = int(((counts > 0) & mask).sum())
            if covered / wanted >= self.settings.trigger_ratio:
                break
            move = _best_move(grid, counts, pool, sites, mask)
            if move is None or move.gain_cells - move.loss_cells < self.settings.min_net_gain_cells:
                break
            donor = next(d for d in pool if d.drone_id == move.drone_id)
            site = sites_by_id[move.to_nest_id]
            counts -= grid.reached_by(donor.x, donor.y, donor.reach_m)
            counts += grid.reached_by(site.x, site.y, donor.reach_m)
            pool.remove(donor)
            self.in_transit[donor.drone_id] = (site.id, now_ms)
            moves.append(move)
        return moves


def _typical_reach(reachers: Sequence[Reacher]) -> float:
    reaches = sorted(r.reach_m for r in reachers if r.reach_m > 0)
    return reaches[len(reaches) // 2] if reaches else 0.0


def _best_move(
    grid: CoverageGrid,
    counts: IntArray,
    pool: Sequence[Donor],
    sites: Sequence[NestSite],
    mask: BoolArray,
) -> Move | None:
    holes = (counts == 0) & mask
    best: tuple[tuple[int, float, str, str], Move] | None = None
    # Gains depend on the reach, which differs little between donors: group by it.
    gains: dict[tuple[str, float], int] = {}
    for donor in pool:
        alone = (counts == 1) & mask & (grid.reached_by(donor.x, donor.y, donor.reach_m) > 0)
        loss = int(alone.sum())
        for site in sites:
            if site.id == donor.nest_id:
                continue
            key = (site.id, round(donor.reach_m, -1))
            gain = gains.get(key)
            if gain is None:
                reach = grid.reached_by(site.x, site.y, donor.reach_m) > 0
                gain = int((holes & reach).sum())
                gains[key] = gain
            if gain <= loss:
                continue
            distance = math.hypot(site.x - donor.x, site.y - donor.y)
            rank = (-(gain - loss), round(distance, 1), donor.drone_id, site.id)
            if best is None or rank < best[0]:
                best = (
                    rank,
                    Move(donor.drone_id, donor.nest_id, site.id, gain, loss, round(distance, 1)),
                )
    return best[1] if best is not None else None


# -- routine inspection under load ----------------------------------------------------------


@dataclass(frozen=True)
class PatrolPolicy:
    """When routine inspection may take idle drones: only while the fleet has room to spare.

    Patrols are the lowest-ranked work, but a patrolling drone is away from its nest for a
    ~12 min sortie; at a surge those drones are missing from the idle pool. New patrols start
    only while coverage is at least min_coverage and at least min_idle_share of the fleet is
    idle, and never more than max_share of the fleet patrols at once (74 routes of ~12 min
    every 30 min need ~30 drones on average, so 20 % keeps the cadence at normal load)."""

    enabled: bool = True
    min_coverage: float = 0.99
    min_idle_share: float = 0.5
    max_share: float = 0.2


def patrol_budget(
    policy: PatrolPolicy, *, fleet: int, idle: int, patrolling: int, coverage: float
) -> int:
    """How many more patrols may start now (0 while the fleet is stretched)."""
    if not policy.enabled:
        return max(0, fleet)  # no limit beyond the core's own
    if fleet <= 0 or coverage < policy.min_coverage:
        return 0
    spare = idle - math.ceil(policy.min_idle_share * fleet)
    room = math.floor(policy.max_share * fleet) - patrolling
    return max(0, min(spare, room))
