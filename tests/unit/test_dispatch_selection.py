"""How a drone is chosen (selection.py): the rank key, the bounds a search compares with it,
and the choice per slot between idle drones and drones taken from less urgent work."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.dispatch.domain.eta import Estimate
from services.dispatch.domain.model import DroneView
from services.dispatch.domain.selection import (
    NO_KEY,
    Candidate,
    best_first,
    choose,
    kth_best,
    least_key,
    may_improve,
    rank_key,
    settled,
)
from tests.builders import drone_view


def drone(drone_id: str, battery: float) -> DroneView:
    """A drone with no capability, no known position and no link: only its battery differs."""
    return drone_view(
        drone_id,
        home_nest="nest-a",
        capabilities=frozenset(),
        endurance_s=1800.0,
        lon=None,
        lat=None,
        link_ok=False,
        battery_pct=battery,
    )


def candidate(drone_id: str, eta: float, battery: float = 50.0) -> Candidate:
    found = Estimate(drone_id, eta, battery - 10.0, True)
    return Candidate(rank_key(found, drone(drone_id, battery)), found, 0.0)


def test_least_time_wins_then_most_battery_then_least_id() -> None:
    ranked = best_first(
        [
            candidate("d-4", 44.0, 30.0),
            candidate("d-3", 43.9, 15.0),
            candidate("d-2", 44.04, 80.0),  # 44.0 s once rounded: ties, more battery
            candidate("d-1", 44.0, 30.0),
        ]
    )
    assert [c.estimate.drone_id for c in ranked] == ["d-3", "d-2", "d-1", "d-4"]


@given(
    st.floats(0.0, 5000.0),
    st.floats(0.0, 600.0),
    st.sampled_from([15.0, 30.0, 100.0]),
    st.sampled_from(["d-0", "d-1", "d-9"]),
)
def test_a_lower_bound_never_ranks_after_the_drone_it_bounds(
    lower: float, extra: float, battery: float, drone_id: str
) -> None:
    d = drone(drone_id, battery)
    key = rank_key(Estimate(drone_id, lower + extra, battery, True), d)
    assert least_key(lower, d) <= key
    assert least_key(lower) < key
    assert may_improve(key, least_key(lower, d)) and may_improve(key, least_key(lower))


def test_a_tie_on_time_left_in_a_source_keeps_the_search_going() -> None:
    """The need-th best found has 44.0 s; the heap holds only worse drones of 44.0 s, but a
    source may still yield a 44.0 s drone with more battery or a lesser id."""
    kth = (44.0, -30.0, "drone-002")
    worse_on_heap = (44.0, -15.0, "drone-001")
    assert not settled(kth, worse_on_heap, least_key(44.0))
    assert not settled(kth, NO_KEY, least_key(44.0))
    assert settled(kth, worse_on_heap, least_key(44.1))
    assert settled(kth, NO_KEY, least_key(float("inf")))
    assert not settled(None, NO_KEY, least_key(float("inf")))


def test_a_tie_on_the_rounded_time_may_still_beat_the_kth_best() -> None:
    kth = (44.0, -30.0, "drone-002")
    assert may_improve(kth, least_key(44.04))
    assert may_improve(kth, least_key(44.04, drone("drone-000", 30.0)))
    assert not may_improve(kth, least_key(44.04, drone("drone-003", 30.0)))
    assert not may_improve(kth, least_key(44.06))
    assert may_improve(None, least_key(1e9))


def test_the_kth_best_key() -> None:
    keys = [(3.0, -1.0, "c"), (1.0, -1.0, "a"), (2.0, -1.0, "b")]
    assert kth_best(keys, 1) == (1.0, -1.0, "a")
    assert kth_best(keys, 3) == (3.0, -1.0, "c")
    assert kth_best(keys, 4) is None


def test_the_best_idle_drone_is_chosen_while_it_makes_the_sla() -> None:
    idle = [candidate("idle-1", 100.0), candidate("idle-2", 200.0)]
    takeable = [candidate("busy-1", 50.0)]
    chosen = choose([0, 1], idle, takeable, left_s=150.0, may_preempt=True)
    # Slot 0: the idle drone makes it. Slot 1: the idle one would be late, the busy one
    # is on time, and the incident may preempt.
    assert [(slot, c.estimate.drone_id) for slot, c in chosen] == [(0, "idle-1"), (1, "busy-1")]
    assert [c.estimate.drone_id for c in idle] == ["idle-2"] and takeable == []


def test_no_preemption_without_the_right_or_without_gain() -> None:
    late = candidate("idle-1", 400.0)
    busy = candidate("busy-1", 50.0)
    assert choose([0], [late], [busy], left_s=300.0, may_preempt=False)[0][1] is late
    also_late = candidate("busy-2", 350.0)
    assert choose([0], [late], [also_late], left_s=300.0, may_preempt=True)[0][1] is late


def test_a_busy_drone_is_taken_when_nothing_idle_is_feasible() -> None:
    busy = candidate("busy-1", 400.0)
    chosen = choose([0, 1], [], [busy], left_s=300.0, may_preempt=True)
    assert [(slot, c.estimate.drone_id) for slot, c in chosen] == [(0, "busy-1")]
