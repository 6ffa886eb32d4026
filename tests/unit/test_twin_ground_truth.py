"""The twin's ground truth, what its cameras see of it, and recall counting."""

from __future__ import annotations

import math
import random
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.freshness import footprint_radius_m
from airgrid.geo import LocalProjection, destination_point, point_in_polygon
from airgrid.reference import ReferenceData, load_reference
from airgrid.sim.ground_truth import (
    FAMILIES,
    LONG_EVENT_MS,
    SHORT_MIN_MS,
    GroundEvent,
    Places,
    draw_duration_ms,
    family_of,
    ground_truth,
    recall,
)
from airgrid.sim.seeing import REPEAT_S, CameraFix, EventIndex, Seeing, in_view, sightings

START_MS = 1_780_000_000_000
HOUR_MS = 3_600_000
FOV = 56.0


@cache
def reference() -> ReferenceData:
    return load_reference()


@cache
def places() -> Places:
    return Places(reference())


def projection() -> LocalProjection:
    return LocalProjection(*reference().zone.centre)


def event(
    n: int, *, lon: float = 114.4, lat: float = 30.48, start: int = 0, minutes: float = 45
) -> GroundEvent:
    return GroundEvent(
        f"ev-{n}", "smoke", "transient", lon, lat, START_MS + start, START_MS + start +
        round(minutes * 60_000),
    )  # fmt: skip


# --- ground truth ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    one = ground_truth(reference(), seed=3, start_ms=START_MS, duration_s=3 * 3600, places=places())
    again = ground_truth(
        reference(), seed=3, start_ms=START_MS, duration_s=3 * 3600, places=places()
    )
    other = ground_truth(
        reference(), seed=4, start_ms=START_MS, duration_s=3 * 3600, places=places()
    )
    assert one == again
    assert one != other
    assert [e.id for e in one] == sorted({e.id for e in one})  # unique, numbered by start


def test_events_lie_in_the_zone_and_overlap_the_window() -> None:
    end = START_MS + 2 * HOUR_MS
    events = ground_truth(reference(), seed=7, start_ms=START_MS, duration_s=7200, places=places())
    codes = {s.code for s in reference().scenarios}
    assert events
    for e in events:
        assert point_in_polygon(e.lon, e.lat, reference().zone.boundary), e
        assert e.scenario in codes
        assert e.end_ms > START_MS and e.start_ms < end, e
        assert SHORT_MIN_MS <= e.duration_ms
    # The city does not start empty: some events were going on before the window opened.
    assert any(e.start_ms < START_MS for e in events)


def test_rates_and_the_long_share_follow_the_families_over_a_day() -> None:
    events = ground_truth(
        reference(), seed=11, start_ms=START_MS, duration_s=24 * 3600, places=places()
    )
    in_day = [e for e in events if e.start_ms >= START_MS]
    for family in FAMILIES:
        mine = [e for e in in_day if e.family == family.name]
        expected = family.per_hour * 24
        # Poisson: within 5 standard deviations of the stated rate.
        assert abs(len(mine) - expected) <= 5 * math.sqrt(expected), (family.name, len(mine))
        long_share = sum(e.is_long for e in mine) / len(mine)
        assert abs(long_share - (1 - family.short_share)) <= 0.12, (family.name, long_share)


def test_scenarios_belong_to_families_by_their_merge_window() -> None:
    by_code = {s.code: s for s in reference().scenarios}
    assert family_of(by_code["open_flame"]).name == "transient"  # 1800 s
    assert family_of(by_code["illegal_parking"]).name == "hours"  # 3600 s
    assert family_of(by_code["waste_dumping"]).name == "lasting"  # 86400 s


@given(st.integers(0, 2**32))
def test_durations_are_short_or_over_half_an_hour_within_the_cap(seed: int) -> None:
    rng = random.Random(seed)
    for family in FAMILIES:
        duration = draw_duration_ms(family, rng)
        short = SHORT_MIN_MS <= duration < LONG_EVENT_MS
        long = LONG_EVENT_MS < duration <= family.long_cap_min * 60_000
        assert short or long, (family.name, duration)


# --- seeing ---------------------------------------------------------------------------------


def seen_at(alt: float, distance: float, bearing: float = 0.0) -> bool:
    lon, lat = destination_point(114.40, 30.48, bearing, distance)
    index = EventIndex([event(1, lon=lon, lat=lat)], projection())
    fix = CameraFix("d-001", 114.40, 30.48, alt, FOV)
    return in_view([fix], index, START_MS + 60_000) == [(0, 0)]


@settings(max_examples=300, deadline=None)
@given(
    alt=st.floats(30, 150),
    ratio=st.floats(0, 2),
    bearing=st.floats(0, 360),
)
def test_a_drone_sees_an_active_event_exactly_when_its_footprint_covers_it(
    alt: float, ratio: float, bearing: float
) -> None:
    """The footprint is freshness's: radius altitude × tan(fov / 2). The local projection is
    within 0.1 % of the great circle here, so only the clear cases are decided."""
    radius = footprint_radius_m(alt, FOV)
    if ratio <= 0.99:
        assert seen_at(alt, ratio * radius, bearing)
    elif ratio >= 1.01:
        assert not seen_at(alt, ratio * radius, bearing)


@given(alt=st.one_of(st.floats(0, 29.9), st.floats(150.1, 1000)), distance=st.floats(0, 50))
def test_outside_inspection_altitude_a_drone_sees_nothing(alt: float, distance: float) -> None:
    assert not seen_at(alt, distance)


def test_the_footprint_edge_at_120_m() -> None:
    radius = 120.0 * math.tan(math.radians(FOV / 2))  # 63.8 m
    assert seen_at(120.0, radius - 1.0)
    assert not seen_at(120.0, radius + 1.0)


def test_no_detection_before_an_event_starts_or_once_it_has_ended() -> None:
    index = EventIndex([event(1, start=60_000, minutes=10)], projection())
    fix = [CameraFix("d-001", 114.4, 30.48, 120.0, FOV)]
    assert in_view(fix, index, START_MS + 59_999) == []
    assert in_view(fix, index, START_MS + 60_000) == [(0, 0)]
    assert in_view(fix, index, START_MS + 60_000 + 600_000 - 1) == [(0, 0)]
    assert in_view(fix, index, START_MS + 60_000 + 600_000) == []


def test_one_detection_per_drone_and_event_per_repeat_interval() -> None:
    seeing = Seeing([event(1), event(2, lon=114.4001)], projection(), seed=1)
    fixes = [
        CameraFix("d-001", 114.4, 30.48, 120.0, FOV),
        CameraFix("d-002", 114.4, 30.48, 100, FOV),
    ]
    first = seeing.see(fixes, START_MS + 1000)
    assert sorted((s.drone_id, s.event.id) for s in first) == [
        ("d-001", "ev-1"), ("d-001", "ev-2"), ("d-002", "ev-1"), ("d-002", "ev-2"),
    ]  # fmt: skip
    assert seeing.see(fixes, START_MS + 1000 + round(REPEAT_S * 1000) - 1) == []
    again = seeing.see(fixes, START_MS + 1000 + round(REPEAT_S * 1000))
    assert len(again) == 4
    assert all(0.5 <= s.confidence <= 0.99 for s in first + again)


def test_sightings_are_a_function_of_their_inputs() -> None:
    index = EventIndex([event(1), event(2, lon=114.4002)], projection())
    fixes = [CameraFix("d-001", 114.4, 30.48, 120.0, FOV, "m-1")]
    one = sightings(fixes, index, START_MS + 5000, random.Random(9), {})
    two = sightings(fixes, index, START_MS + 5000, random.Random(9), {})
    assert one == two and one[0].mission_id == "m-1"


# --- recall ---------------------------------------------------------------------------------


def test_recall_counts_long_events_inside_the_window_caught_before_their_end() -> None:
    end = START_MS + 10 * HOUR_MS
    events = [
        event(1, minutes=45),  # caught during
        event(2, minutes=45),  # seen only after it ended: missed
        event(3, minutes=45),  # never seen: missed
        event(4, minutes=20),  # short: not counted
        event(5, start=-60_000, minutes=45),  # began before the window: not counted
        event(6, start=10 * HOUR_MS - 60_000, minutes=45),  # ends after it: not counted
        event(7, minutes=30),  # exactly 30 min is not "over 30 min"
    ]
    first = {
        "ev-1": START_MS + 600_000,
        "ev-2": START_MS + 45 * 60_000,
        "ev-4": START_MS,
        "ev-5": START_MS,
        "ev-6": end,
    }
    found = recall(events, first, start_ms=START_MS, end_ms=end)
    assert (found.counted, found.caught) == (3, 1)
    assert found.share == 1 / 3
    assert found.time_to_case_s == (600.0,)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 600), st.integers(5, 300), st.one_of(st.none(), st.integers(0, 900))
        ),
        max_size=30,
    )
)
def test_recall_is_a_share_of_the_long_events_and_never_counts_a_late_case(
    specs: list[tuple[int, int, int | None]],
) -> None:
    events = [event(n, start=s * 60_000, minutes=m) for n, (s, m, _) in enumerate(specs)]
    first = {f"ev-{n}": START_MS + c * 60_000 for n, (_, _, c) in enumerate(specs) if c is not None}
    found = recall(events, first, start_ms=START_MS, end_ms=START_MS + 15 * HOUR_MS)
    assert found.counted == sum(1 for e in events if e.is_long)
    expected = sum(1 for e in events if e.is_long and e.id in first and first[e.id] < e.end_ms)
    assert found.caught == expected
    assert all(t >= 0 for t in found.time_to_case_s)
