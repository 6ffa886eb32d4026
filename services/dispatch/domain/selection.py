"""How a drone is chosen for an incident: the one ranking of candidates and the choice rule.

A candidate is a drone that carries the incident's capabilities and whose estimate is
feasible (eta.py: it can launch, and its battery covers the trip, the time on scene and
the way to the nearest nest with the reserve). Candidates rank by their key, least first:

    (time to scene rounded to 0.1 s, -battery now, drone id)

so the least time wins, a tie on the rounded time goes to the most charged drone, and the
id makes the order total: the same fleet always yields the same choice, whichever index
holds a drone (run card or live grid) and whatever it does (idle, heading home, patrol).
Each open slot takes the best of them (choose): a drone is taken from less urgent work
only when nothing else is feasible or, for the urgent, when only that meets the SLA.

The search (core.py) only yields candidates. Every comparison it makes to skip a drone or
to stop goes through the bounds here: a lower bound on a time to scene becomes the least
key a drone (or any drone) with that time can have, and the search is done once the
need-th best key found is below every bound still open.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.dispatch.domain.eta import Estimate
from services.dispatch.domain.model import DroneView, Mission

RankKey = tuple[float, float, str]

# A lower bound and the estimate it bounds are summed in different orders; this much is
# taken off a bound before rounding so float noise never lifts it above the key it bounds.
_BOUND_SLACK_S = 1e-6

# Sorts after every key: what an empty heap offers.
NO_KEY: RankKey = (math.inf, math.inf, "")


def most_battery_first(drone: DroneView) -> tuple[float, str]:
    """The order of drones with the same time to scene (the members of a launch group, a
    nest's docked drones for a patrol): most battery, then the least id."""
    return (-drone.battery_pct, drone.id)


def rank_key(found: Estimate, drone: DroneView) -> RankKey:
    """The rank of a feasible drone: least key wins."""
    return (round(found.eta_seconds, 1), -drone.battery_pct, drone.id)


def least_key(lower_s: float, drone: DroneView | None = None) -> RankKey:
    """The least key a drone whose time to scene is at least lower_s can have; with no
    drone, the least of any drone's (it sorts before every drone with that bound)."""
    eta_floor = round(lower_s - _BOUND_SLACK_S, 1)
    if drone is None:
        return (eta_floor, -math.inf, "")
    return (eta_floor, -drone.battery_pct, drone.id)


def may_improve(kth: RankKey | None, bound: RankKey) -> bool:
    """Can a drone whose key is at least `bound` rank among the need best, the need-th best
    key found so far being kth (None: fewer found)? A tie on the rounded time may still
    win on battery or id."""
    return kth is None or not kth < bound


def settled(kth: RankKey | None, top: RankKey, floor: RankKey) -> bool:
    """Is the need-th best key found final? It is when it is below both the least key on
    a search's heap (`top`) and the least key its sources can still yield (`floor`)."""
    return kth is not None and kth < top and kth < floor


def kth_best(keys: Sequence[RankKey], need: int) -> RankKey | None:
    """The need-th least key, or None when there are fewer."""
    if len(keys) < need:
        return None
    return min(keys) if need == 1 else sorted(keys)[need - 1]


@dataclass(frozen=True)
class Candidate:
    """A feasible drone for one incident, with its rank."""

    key: RankKey
    estimate: Estimate
    path_m: float
    mission: Mission | None = None  # set when the drone is taken from other work
    straight: bool = False  # known to fly straight to the scene (its run card says so)


def best_first(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: c.key)


def unranked_order(infeasible: Iterable[Estimate]) -> list[Estimate]:
    """Infeasible estimates, never chosen, listed by time to scene, then battery left at
    the end of the flight, then id."""
    return sorted(infeasible, key=lambda e: (e.eta_seconds, -e.battery_after_pct, e.drone_id))


def choose(
    slots: Sequence[int],
    available: list[Candidate],
    takeable: list[Candidate],
    *,
    left_s: float,
    may_preempt: bool,
) -> list[tuple[int, Candidate]]:
    """The drone of each open slot, in slot order. `available` (idle drones and those whose
    work yields: heading home, on patrol) and `takeable` (drones on less urgent incidents)
    are best first; the chosen are taken off them.

    The best available drone is chosen, unless the incident may preempt and that drone
    would reach the scene after the SLA (`left_s` from now): then the best takeable drone
    that makes the SLA is chosen, if any. A takeable drone is also chosen when nothing is
    available at all. Preemption thus happens only when nothing available is feasible, or
    (for the urgent) when it is the only way to be on scene within the SLA."""
    chosen: list[tuple[int, Candidate]] = []
    for slot in slots:
        pick: Candidate | None = None
        if available and (available[0].estimate.eta_seconds <= left_s or not may_preempt):
            pick = available.pop(0)
        elif takeable and (
            not available or (may_preempt and takeable[0].estimate.eta_seconds <= left_s)
        ):
            pick = takeable.pop(0)
        elif available:
            pick = available.pop(0)
        if pick is None:
            break
        chosen.append((slot, pick))
    return chosen
