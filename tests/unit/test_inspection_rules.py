"""Inspection plan rules (services/registry/domain/inspection_rules.py), pure: active windows
in the zone's local time, revisit and width bounds, corridor lines, plans in the zone; and the
reference zone's plans and scenario catalogue pass every rule the REST edge applies."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from airgrid.reference import DEFAULT_ZONE, ReferenceDataError, load_reference
from services.registry.domain.inspection_rules import (
    MAX_CORRIDOR_WIDTH_M,
    MAX_REVISIT_S,
    MIN_REVISIT_S,
    MINUTES_PER_DAY,
    ActiveWindow,
    clock_minutes,
    corridor_width_problems,
    is_active_at,
    line_problems,
    open_minutes_per_day,
    revisit_problems,
    zone_problems,
)
from services.registry.inspection_schemas import PlanCreate, ScenarioCreate
from services.registry.inspection_seed import plan_document, scenario_document

SHANGHAI = ZoneInfo("Asia/Shanghai")
REFERENCE = load_reference()
minutes = st.integers(min_value=0, max_value=MINUTES_PER_DAY - 1)


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# -- windows -----------------------------------------------------------------------------


def test_a_morning_window_is_read_in_the_zones_time_zone() -> None:
    morning = [ActiveWindow.parse("07:00", "09:00")]
    # 07:30 in Wuhan is 23:30 UTC the day before.
    assert is_active_at(morning, datetime(2026, 5, 1, 23, 30, tzinfo=UTC), SHANGHAI)
    assert not is_active_at(morning, datetime(2026, 5, 1, 7, 30, tzinfo=UTC), SHANGHAI)
    assert is_active_at(morning, datetime(2026, 5, 2, 7, 0, tzinfo=SHANGHAI), SHANGHAI)
    assert not is_active_at(morning, datetime(2026, 5, 2, 9, 0, tzinfo=SHANGHAI), SHANGHAI)


def test_a_window_past_midnight_covers_both_sides() -> None:
    night = [ActiveWindow.parse("20:00", "02:00")]
    for hour, active in ((19, False), (20, True), (23, True), (1, True), (2, False), (12, False)):
        moment = datetime(2026, 5, 2, hour, 0, tzinfo=SHANGHAI)
        assert is_active_at(night, moment, SHANGHAI) is active, hour
    assert night[0].open_minutes == 6 * 60


def test_no_windows_means_always_active() -> None:
    assert is_active_at([], datetime(2026, 5, 2, 3, 17, tzinfo=UTC), SHANGHAI)
    assert open_minutes_per_day([]) == MINUTES_PER_DAY


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        is_active_at([ActiveWindow.parse("07:00", "09:00")], datetime(2026, 5, 2, 8), SHANGHAI)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("07:00", "07:00", "never opens"),
        ("7:00", "09:00", "HH:MM"),
        ("24:00", "09:00", "HH:MM"),
        ("07:60", "09:00", "HH:MM"),
        ("07:00", "9", "HH:MM"),
    ],
)
def test_a_window_that_cannot_open_is_refused(start: str, end: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ActiveWindow.parse(start, end)


@given(minutes)
def test_clock_text_round_trips(minute: int) -> None:
    assert clock_minutes(clock(minute)) == minute


@given(start=minutes, end=minutes, probe=minutes)
def test_a_window_and_its_complement_split_the_day(start: int, end: int, probe: int) -> None:
    assume(start != end)
    window = ActiveWindow.parse(clock(start), clock(end))
    rest = ActiveWindow.parse(clock(end), clock(start))
    assert window.contains(probe) != rest.contains(probe)
    assert window.open_minutes + rest.open_minutes == MINUTES_PER_DAY
    assert open_minutes_per_day([window]) == window.open_minutes
    assert window.contains(start) and not window.contains(end)


@given(
    start=minutes,
    end=minutes,
    instant=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_activity_depends_only_on_the_local_time_of_day(
    start: int, end: int, instant: datetime
) -> None:
    assume(start != end)
    windows = [ActiveWindow.parse(clock(start), clock(end))]
    local = instant.astimezone(SHANGHAI)
    expected = windows[0].contains(local.hour * 60 + local.minute)
    assert is_active_at(windows, instant, SHANGHAI) is expected
    # The same local time a day later (Shanghai keeps no daylight saving) answers the same.
    assert is_active_at(windows, instant + timedelta(days=1), SHANGHAI) is expected


# -- intervals, widths, lines, zone --------------------------------------------------------


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_revisit_interval_bounds(interval: int) -> None:
    assert (revisit_problems(interval) == []) is (MIN_REVISIT_S <= interval <= MAX_REVISIT_S)


def test_an_interval_under_five_minutes_is_refused_with_its_reason() -> None:
    assert "5 min" in revisit_problems(299)[0]
    assert revisit_problems(300) == []


@pytest.mark.parametrize(
    "width", [None, 0.0, -5.0, math.nan, math.inf, MAX_CORRIDOR_WIDTH_M + 1, 1e300]
)
def test_absurd_corridor_widths_are_refused(width: float | None) -> None:
    assert corridor_width_problems(width)


@given(st.floats(min_value=0.001, max_value=MAX_CORRIDOR_WIDTH_M))
def test_sensible_corridor_widths_pass(width: float) -> None:
    assert corridor_width_problems(width) == []


@pytest.mark.parametrize(
    ("coordinates", "message"),
    [
        ([[114.4, 30.5]], "needs 2"),
        ([[114.4, 30.5], [114.4, 30.5]], "equal"),
        ([[114.4, 30.5], [math.nan, 30.5]], "out of range"),
        ([[114.4, 30.5], [1e308, 30.5]], "out of range"),
        ([[114.4, 30.5], [30.5, 114.4]], "latitude"),
        ("LINESTRING(0 0, 1 1)", "list of positions"),
    ],
)
def test_bad_corridor_lines_are_refused(coordinates: Any, message: str) -> None:
    problems = line_problems(coordinates)
    assert problems and message in " ".join(problems), problems


def test_a_plan_far_from_the_zone_is_refused() -> None:
    boundary = REFERENCE.zone.boundary
    assert zone_problems([[116.4, 39.9], [116.5, 39.9]], boundary)  # Beijing
    # Inside the margin around the bounding box, but touching nothing of the zone.
    lon, lat = boundary[0]
    assert zone_problems([[lon + 0.005, lat], [lon + 0.006, lat]], boundary)


@given(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_a_corridor_from_the_zone_centre_is_in_the_zone(fx: float, fy: float) -> None:
    centre = REFERENCE.zone.centre
    lons = [p[0] for p in REFERENCE.zone.boundary]
    lats = [p[1] for p in REFERENCE.zone.boundary]
    end = [min(lons) + fx * (max(lons) - min(lons)), min(lats) + fy * (max(lats) - min(lats))]
    assert zone_problems([list(centre), end], REFERENCE.zone.boundary) == []


def test_the_whole_zone_is_a_valid_plan_area() -> None:
    assert zone_problems(REFERENCE.zone.boundary, REFERENCE.zone.boundary) == []


# -- the reference zone's plans and scenarios ------------------------------------------------


def test_every_reference_plan_passes_the_rest_rules() -> None:
    plans = REFERENCE.inspection_plans
    assert {p.department for p in plans} == {d.code for d in REFERENCE.departments}
    for spec in plans:
        body = PlanCreate.model_validate(plan_document(spec))
        geometry = body.geometry.model_dump()
        positions = (
            geometry["coordinates"]
            if geometry["type"] == "LineString"
            else geometry["coordinates"][0]
        )
        assert zone_problems(positions, REFERENCE.zone.boundary) == [], spec.id
        if geometry["type"] == "LineString":
            assert corridor_width_problems(body.width_m) == [], spec.id
        else:
            assert body.width_m is None, spec.id


def test_the_reference_plans_follow_the_issue() -> None:
    plans = {p.id: p for p in REFERENCE.inspection_plans}
    baseline = plans["zone-baseline"]
    assert baseline.revisit_interval_s == 86_400 and not baseline.active_windows
    traffic = [p for p in plans.values() if p.department == "traffic"]
    assert traffic and all(p.geometry["type"] == "LineString" for p in traffic)
    assert all(p.revisit_interval_s == 20 * 60 for p in traffic)
    assert all(("07:00", "09:00") in p.active_windows for p in traffic)
    shores = [p for p in plans.values() if p.department == "water"]
    assert shores and all(p.revisit_interval_s == 4 * 3600 for p in shores)


def test_the_scenario_catalogue_covers_every_department() -> None:
    scenarios = REFERENCE.scenarios
    assert 30 <= len(scenarios) <= 40
    owners = {d for s in scenarios for d in s.departments}
    assert owners == {d.code for d in REFERENCE.departments}
    codes = {s.code for s in scenarios}
    for named in (
        "smoke",
        "open_flame",
        "illegal_burning",
        "traffic_accident",
        "traffic_congestion",
        "illegal_parking",
        "water_discolouration",
        "algae_bloom",
        "illegal_fishing",
        "illegal_construction",
        "site_dust",
    ):
        assert named in codes, named  # fmt: skip
    flame = next(s for s in scenarios if s.code == "open_flame")
    assert flame.escalation is not None
    assert flame.escalation.min_confidence == 0.8 and flame.escalation.priority == 1
    assert flame.escalation.incident_type == "fire"
    for spec in scenarios:
        ScenarioCreate.model_validate(scenario_document(spec))


def test_a_bad_window_in_a_shipped_plan_fails_the_rest_rules() -> None:
    document = plan_document(REFERENCE.inspection_plans[1])
    document["active_windows"] = [{"start": "08:00", "end": "08:00"}]
    with pytest.raises(ValidationError, match="never opens"):
        PlanCreate.model_validate(document)


def _broken(tmp_path: Path, name: str, change: Callable[[Any], Any]) -> Path:
    target = tmp_path / "zone"
    shutil.copytree(DEFAULT_ZONE, target)
    path = target / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))), encoding="utf-8")
    return target


def _unknown_owner(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[0]["departments"] = ["fire", "space-agency"]
    return entries


def _unknown_incident_type(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[1]["escalation"]["incident_type"] = "meteor"
    return entries


def _confidence_above_one(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[1]["escalation"]["min_confidence"] = 1.5
    return entries


def _zero_radius(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[0]["merge_radius_m"] = 0
    return entries


def _plan_of_nobody(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries[0]["department"] = "space-agency"
    return entries


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("scenarios.json", _unknown_owner, "space-agency"),
        ("scenarios.json", _unknown_incident_type, "meteor"),
        ("scenarios.json", _confidence_above_one, "min_confidence"),
        ("scenarios.json", _zero_radius, "merge_radius_m"),
        ("inspection_plans.json", _plan_of_nobody, "space-agency"),
    ],
)
def test_the_loader_names_a_bad_catalogue_or_plan_entry(
    tmp_path: Path, name: str, change: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(ReferenceDataError, match=message) as caught:
        load_reference(_broken(tmp_path, name, change))
    assert name in str(caught.value)


def test_a_zone_may_ship_without_plans_or_scenarios(tmp_path: Path) -> None:
    target = tmp_path / "zone"
    shutil.copytree(DEFAULT_ZONE, target)
    (target / "scenarios.json").unlink()
    (target / "inspection_plans.json").unlink()
    bare = load_reference(target)
    assert bare.scenarios == () and bare.inspection_plans == ()
