"""A straight leg is blocked whenever part of it runs inside a no-fly polygon, also when it
only touches the boundary at vertices on its way in and out; it is never blocked while it
stays outside the closed polygon. (A leg along an edge may count as blocked: the graph's
nodes are pushed out by a margin, so the detour is still found.)"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from airgrid.geo import point_in_polygon
from services.dispatch.domain.nofly import DetourPlanner

DIAMOND = ((3298.0, 0.0), (2998.0, 300.0), (2698.0, 0.0), (2998.0, -300.0))
SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))


def test_a_leg_through_two_opposite_vertices_is_blocked() -> None:
    # The leg meets the boundary only at the diamond's two vertices: no proper crossing,
    # and its midpoint lies outside, yet 600 m of it run inside.
    assert DetourPlanner([DIAMOND]).blocked((3340.0, 0.0), (0.0, 0.0))


def test_a_leg_that_touches_one_vertex_is_not_blocked() -> None:
    assert not DetourPlanner([DIAMOND]).blocked((3298.0, -500.0), (3298.0, 500.0))


def test_a_leg_along_a_diagonal_of_the_square_is_blocked() -> None:
    assert DetourPlanner([SQUARE]).blocked((-10.0, -10.0), (110.0, 110.0))


def _sampled(a: tuple[float, float], b: tuple[float, float]) -> tuple[bool, bool]:
    """The oracle, 2,001 points along the leg: any strictly inside the square; any inside
    or on its boundary."""
    inside = touching = False
    for i in range(2001):
        t = i / 2000
        x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        inside = inside or (0.0 < x < 100.0 and 0.0 < y < 100.0)
        touching = touching or (0.0 <= x <= 100.0 and 0.0 <= y <= 100.0)
    return inside, touching


# Endpoints on a 25 m lattice hit vertices, edges and diagonals often; long legs put the
# midpoint outside the square while the leg runs through it.
lattice = st.tuples(
    st.integers(-8, 24).map(lambda v: v * 25.0), st.integers(-8, 24).map(lambda v: v * 25.0)
)


@settings(max_examples=600, deadline=None)
@given(lattice, lattice)
@example((-25.0, -25.0), (600.0, 600.0))  # through two opposite corners, midpoint outside
@example((-200.0, 300.0), (300.0, -200.0))
def test_blocked_agrees_with_sampling_the_leg(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    if point_in_polygon(a[0], a[1], SQUARE) or point_in_polygon(b[0], b[1], SQUARE):
        return  # legs from inside a zone are the planner's escape case, not this rule
    inside, touching = _sampled(a, b)
    blocked = DetourPlanner([SQUARE]).blocked(a, b)
    if inside:
        assert blocked, "a leg through the zone was let through"
    if not touching:
        assert not blocked, "a leg clear of the zone was blocked"
