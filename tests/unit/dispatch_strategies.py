"""The random world of the dispatch-core properties: three nests and a no-fly box around
(LON, LAT), the flat metres the referee measures in, and the hypothesis strategies of
fleets, no-fly zones and sequences of operations.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from airgrid.nofly import NoFlyZone
from services.dispatch.domain.model import DroneView, NestView

LON, LAT = 114.40, 30.48
NESTS = (
    NestView("nest-a", LON, LAT),
    NestView("nest-b", LON + 0.06, LAT + 0.03),
    NestView("nest-c", LON - 0.04, LAT + 0.05),
)
# A no-fly box between the nests, so that some trips detour.
ZONE = NoFlyZone(
    "nfz-1",
    ((LON + 0.01, LAT + 0.005), (LON + 0.03, LAT + 0.005), (LON + 0.03, LAT + 0.02),
     (LON + 0.01, LAT + 0.02)),
)  # fmt: skip
CAPABILITIES = ("visual", "thermal", "loudspeaker")
DEPARTMENTS = ("fire", "police", "ems")
TYPES = ("fire", "flood", "traffic")

# -- the referee's flat metres ----------------------------------------------------------------
# Its own flat metres around (LON, LAT), so that a fault in the core's projection cannot hide
# in the check (its clipping is in dispatch_referee.py). The map from lon/lat is affine, so
# segments and convex polygons stay segments and convex polygons.

M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT))
XY = tuple[float, float]


def metres(lon: float, lat: float) -> XY:
    return ((lon - LON) * M_PER_DEG_LON, (lat - LAT) * M_PER_DEG_LAT)


@st.composite
def convex_zones(draw: st.DrawFn) -> tuple[tuple[float, float], ...]:
    """A regular polygon of 3 to 6 corners, 0.6 to 6 km across, turned at random."""
    cx, cy = metres(LON + draw(st.floats(-0.04, 0.07)), LAT + draw(st.floats(-0.02, 0.06)))
    radius = draw(st.floats(300.0, 3000.0))
    corners = draw(st.integers(3, 6))
    turn = draw(st.floats(0.0, 2 * math.pi))
    ring = []
    for k in range(corners):
        angle = turn + 2 * math.pi * k / corners
        x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        ring.append((LON + x / M_PER_DEG_LON, LAT + y / M_PER_DEG_LAT))
    return tuple(ring)


zone_sets = st.lists(
    st.one_of(st.just(ZONE.ring), convex_zones()), min_size=1, max_size=2, unique=True
).map(lambda rings: tuple(NoFlyZone(f"nfz-{k}", ring) for k, ring in enumerate(rings)))

# -- strategies -----------------------------------------------------------------------------

offsets = st.tuples(st.floats(-0.05, 0.08), st.floats(-0.03, 0.07))
caps = st.frozensets(st.sampled_from(CAPABILITIES), min_size=1, max_size=2)


@st.composite
def fleets(draw: st.DrawFn) -> list[DroneView]:
    count = draw(st.integers(1, 12))
    drones = []
    for i in range(count):
        nest = draw(st.sampled_from(NESTS))
        at_nest = draw(st.booleans())
        dx, dy = (0.0, 0.0) if at_nest else draw(offsets)
        drones.append(
            DroneView(
                id=f"drone-{i:02d}",
                home_nest=nest.id,
                capabilities=draw(caps),
                cruise_speed_mps=draw(st.sampled_from([12.0, 15.0, 18.0])),
                climb_rate_mps=5.0,
                cruise_altitude_m=120.0,
                launch_delay_s=draw(st.sampled_from([10.0, 20.0])),
                endurance_s=draw(st.sampled_from([1800.0, 2400.0])),
                lon=nest.lon + dx,
                lat=nest.lat + dy,
                battery_pct=draw(st.floats(10.0, 100.0)),
                airborne=not at_nest,
                link_ok=draw(st.sampled_from([True, True, True, False])),
            )
        )
    return drones


incident_ops = st.tuples(
    st.just("incident"),
    st.integers(1, 4),  # priority
    offsets,
    st.frozensets(st.sampled_from(CAPABILITIES), max_size=1),
    st.integers(1, 3),  # drones needed
    st.sampled_from(DEPARTMENTS),
    st.sampled_from(TYPES),
    st.sampled_from([60, 300, 900]),  # on scene seconds
)
state_ops = st.tuples(
    st.just("state"),
    st.integers(0, 11),
    offsets,
    st.floats(5.0, 100.0),
    st.booleans(),  # airborne
)
# A telemetry report of an idle or busy drone in flight: it moved, its battery drained a bit.
move_ops = st.tuples(st.just("move"), st.integers(0, 11), offsets, st.floats(0.0, 3.0))
# A busy drone reports progress on its mission: flying out, at the scene, heading home (where
# it may be retasked), or docked again; its battery drained a little or a lot.
progress_ops = st.tuples(
    st.just("progress"),
    st.integers(0, 50),
    st.sampled_from(["out", "scene", "home", "docked"]),
    offsets,
    st.floats(0.0, 60.0),
)
ops = st.lists(
    st.one_of(
        incident_ops,
        incident_ops,
        state_ops,
        move_ops,
        progress_ops,
        progress_ops,
        st.tuples(
            st.just("fail"), st.integers(0, 50), st.sampled_from(["link", "fault", "battery"])
        ),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("end"), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.integers(1, 400)),
        st.tuples(
            st.just("restart"),
        ),
    ),
    min_size=1,
    max_size=40,
)
