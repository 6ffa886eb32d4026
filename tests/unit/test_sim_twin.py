"""Unit tests of the twin's pure parts: load profiles, charging curve, wind, faults and the
outcome bookkeeping behind the dashboard and the SLA report."""

from __future__ import annotations

import time

import pytest

from airgrid.geo import haversine_m, point_in_polygon
from airgrid.reference import load_reference
from airgrid.sim.faults import GUST, LINK_LOSS, NEST_OFFLINE, FaultEvent, fault_schedule
from airgrid.sim.fleet import Fleet
from airgrid.sim.load import HOUR_FACTORS, PROFILES, LoadModel, hour_factor
from airgrid.sim.outcomes import Outcomes, distribution, percentile
from airgrid.sim.physics import (
    CHARGE_MIN_PCT_PER_S,
    CHARGE_PCT_PER_S,
    charge_rate_pct_per_s,
    charged,
    ground_speed_mps,
)
from airgrid.v1 import command_pb2, dispatch_pb2, mission_pb2

REFERENCE = load_reference(None)


def test_profiles_surge_is_ten_times_nominal_and_hours_average_one() -> None:
    assert PROFILES["surge"] == pytest.approx(10 * PROFILES["nominal"])
    assert sum(HOUR_FACTORS) / 24 == pytest.approx(1.0, abs=0.01)
    assert hour_factor(3.0) < hour_factor(8.0)
    assert hour_factor(7.5) == pytest.approx((HOUR_FACTORS[7] + HOUR_FACTORS[8]) / 2)


def test_load_is_reproducible_from_the_seed_and_scales_with_the_profile() -> None:
    a = LoadModel(REFERENCE, profile="busy", seed=3).schedule(1800)
    b = LoadModel(REFERENCE, profile="busy", seed=3).schedule(1800)
    c = LoadModel(REFERENCE, profile="busy", seed=4).schedule(1800)
    assert a == b
    assert a != c
    nominal = len(LoadModel(REFERENCE, profile="nominal", seed=1).schedule(3600))
    surge = len(LoadModel(REFERENCE, profile="surge", seed=1).schedule(3600))
    assert 5 < surge / nominal < 15
    offsets = [s.offset_s for s in a]
    assert offsets == sorted(offsets)


def test_quiet_hours_get_fewer_incidents_than_the_rush() -> None:
    night = LoadModel(REFERENCE, profile="surge", seed=2, start_hour=2.0).schedule(3600)
    rush = LoadModel(REFERENCE, profile="surge", seed=2, start_hour=17.0).schedule(3600)
    assert len(night) < len(rush)


def test_incidents_are_in_the_zone_with_a_priority_mix_and_all_departments() -> None:
    schedule = LoadModel(REFERENCE, profile="surge", seed=5).schedule(3600)
    no_fly = [g.ring for g in REFERENCE.geofences if g.kind in ("no-fly", "temporary")]
    for s in schedule:
        lon, lat = s.incident.point
        assert point_in_polygon(lon, lat, REFERENCE.zone.boundary)
        assert not any(point_in_polygon(lon, lat, ring) for ring in no_fly)
    assert {s.incident.body["priority"] for s in schedule} == {1, 2, 3, 4}
    assert {s.incident.department for s in schedule} == {d.code for d in REFERENCE.departments}


def test_duplicates_come_from_another_department_close_by_and_later() -> None:
    schedule = LoadModel(REFERENCE, profile="surge", seed=5).schedule(3600)
    by_seq = {s.seq: s for s in schedule}
    duplicates = [s for s in schedule if s.duplicate_of is not None]
    assert duplicates
    for again in duplicates:
        first = by_seq[again.duplicate_of]  # type: ignore[index]
        assert again.incident.department != first.incident.department
        assert again.incident.body["type"] == first.incident.body["type"]
        assert again.offset_s > first.offset_s
        assert haversine_m(*again.incident.point, *first.incident.point) < 1000


def test_charging_is_constant_current_then_tapers() -> None:
    assert charge_rate_pct_per_s(50.0) == CHARGE_PCT_PER_S
    assert charge_rate_pct_per_s(95.0) < CHARGE_PCT_PER_S
    assert charge_rate_pct_per_s(99.99) == pytest.approx(CHARGE_MIN_PCT_PER_S)
    # A DJI Dock 2 takes a battery from 20 to 90 % in about 32 minutes.
    assert charged(20.0, 32 * 60.0) == pytest.approx(90.0, abs=0.5)
    assert charged(40.0, 60.0) == pytest.approx(40.0 + 60 * CHARGE_PCT_PER_S)
    # The last 10 % take longer than at full current.
    assert charged(90.0, 10 / CHARGE_PCT_PER_S) < 100.0
    assert charged(10.0, 4 * 3600.0) == 100.0


def test_wind_speeds_up_a_tailwind_and_slows_a_headwind() -> None:
    # Wind from the south (180) blows north: heading 0 has it behind.
    assert ground_speed_mps(15.0, 0.0, 5.0, 180.0) == pytest.approx(20.0)
    assert ground_speed_mps(15.0, 180.0, 5.0, 180.0) == pytest.approx(10.0)
    assert ground_speed_mps(15.0, 90.0, 5.0, 180.0) == pytest.approx(15.0)
    assert ground_speed_mps(15.0, 180.0, 50.0, 180.0) == pytest.approx(4.5)
    assert ground_speed_mps(15.0, 0.0, 0.0, 0.0) == 15.0


def test_fault_schedule_is_seeded_and_empty_at_none() -> None:
    args = {"duration_s": 7200.0, "drone_ids": ["a", "b"], "nest_holds": {"n1": 12.0}}
    assert fault_schedule(level="none", seed=1, **args) == []  # type: ignore[arg-type]
    light = fault_schedule(level="light", seed=1, **args)  # type: ignore[arg-type]
    assert light == fault_schedule(level="light", seed=1, **args)  # type: ignore[arg-type]
    heavy = fault_schedule(level="heavy", seed=1, **args)  # type: ignore[arg-type]
    assert len(heavy) > len(light) > 0
    gusts = [e for e in heavy if e.kind == GUST]
    assert all(e.wind_mps > 12.0 for e in gusts)
    with pytest.raises(ValueError, match="unknown fault level"):
        fault_schedule(level="chaos", seed=1, **args)  # type: ignore[arg-type]


def launch(drone_id: str) -> command_pb2.DroneCommand:
    return command_pb2.DroneCommand(
        command_id="c-" + drone_id,
        drone_id=drone_id,
        kind=command_pb2.COMMAND_KIND_LAUNCH,
        mission_id="m1",
        target_lon=114.45,
        target_lat=30.50,
    )


def test_link_loss_silences_a_drone_until_it_clears() -> None:
    fleet = Fleet(REFERENCE, start_ms=0)
    drone_id = sorted(fleet.drones)[0]
    fleet.inject(FaultEvent(0.0, LINK_LOSS, drone_id, 30.0), now_ms=0)
    reported = {r.drone_id for t in range(1, 25) for r in fleet.tick(t * 1000, 1.0)}
    assert drone_id not in reported
    assert len(reported) == len(fleet) - 1
    later = {r.drone_id for t in range(31, 35) for r in fleet.tick(t * 1000, 1.0)}
    assert drone_id in later


def test_an_offline_or_gusty_nest_reports_the_fault_and_refuses_launches() -> None:
    fleet = Fleet(REFERENCE, start_ms=0)
    first, second = sorted(fleet.drones)[:2]
    nest = fleet.drones[first].home_nest_id
    fleet.inject(FaultEvent(0.0, NEST_OFFLINE, nest, 60.0), now_ms=0)
    fleet.tick(1000, 0.1)
    assert fleet.drones[first].faults == [NEST_OFFLINE]
    assert not fleet.apply(launch(first))
    fleet.tick(61_000, 0.1)
    assert fleet.drones[first].faults == []
    assert fleet.apply(launch(first))

    other = fleet.drones[second].home_nest_id
    hold = fleet.wind_hold[other]
    fleet.inject(FaultEvent(0.0, GUST, other, 60.0, wind_mps=hold + 3), now_ms=100_000)
    fleet.tick(101_000, 0.1)
    if not fleet.drones[second].airborne:
        assert fleet.drones[second].faults == ["wind_hold"]
        assert fleet.drones[second].wind_mps == pytest.approx(hold + 3)
        assert not fleet.apply(launch(second))
    status = fleet.by_status()
    assert sum(v for k, v in status.items() if k != "faulty") == len(fleet)


def decision(incident_id: str, kind: int, accepted: int, at: int, reason: str = "") -> bytes:
    return dispatch_pb2.DispatchDecision(
        decision_id=f"{incident_id}-{kind}",
        incident_id=incident_id,
        kind=kind,  # type: ignore[arg-type]
        incident_accepted_time_ms=accepted,
        decided_time_ms=at,
        reason=reason,
    ).SerializeToString()


def test_outcomes_join_posts_decisions_and_stages_per_department() -> None:
    o = Outcomes()
    for i, (dep, prio) in enumerate([("fire", 1), ("fire", 2), ("traffic", 3), ("police", 1)]):
        o.on_posted(f"i{i}", department=dep, priority=prio, type="t", at_ms=0)
    assigned = dispatch_pb2.DECISION_KIND_ASSIGNED
    o.on_decision(dispatch_pb2.DispatchDecision.FromString(decision("i0", assigned, 1000, 1050)))
    o.on_decision(dispatch_pb2.DispatchDecision.FromString(decision("i1", assigned, 1000, 1080)))
    o.on_decision(
        dispatch_pb2.DispatchDecision.FromString(
            decision("i2", dispatch_pb2.DECISION_KIND_QUEUED, 1000, 1100)
        )
    )
    linked = dispatch_pb2.DECISION_KIND_LINKED
    o.on_decision(
        dispatch_pb2.DispatchDecision.FromString(decision("i3", linked, 20_000, 20_010, "i0: x"))
    )
    on_scene = mission_pb2.MISSION_STAGE_ON_SCENE
    o.on_mission(mission_pb2.MissionEvent(incident_id="i0", stage=on_scene, event_time_ms=91_000))
    o.on_mission(mission_pb2.MissionEvent(incident_id="i1", stage=on_scene, event_time_ms=401_000))
    # patrols and others' incidents are not counted
    o.on_mission(mission_pb2.MissionEvent(incident_id="p", stage=on_scene, event_time_ms=1))
    summary = o.summary(now_ms=500_000, sla=300.0)
    assert summary["incidents_posted"] == 4
    assert summary["on_scene"] == 3  # i0, i1 and the duplicate i3 through i0
    assert summary["missed_sla_without_drone"] == 1  # i2 queued past the SLA
    assert summary["within_sla_share"] == pytest.approx(2 / 4)
    assert summary["time_to_scene_by_department"]["police"]["p50_s"] == pytest.approx(71.0)
    assert summary["time_to_scene_by_priority"]["1"]["count"] == 2
    assert summary["decision_latency"]["count"] == 4
    stages = o.stages_by_department()
    assert stages["fire"]["on scene"] == 2
    assert stages["traffic"]["queued"] == 1


def test_percentiles_and_distributions() -> None:
    assert percentile([], 50) is None
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == pytest.approx(25.0)
    d = distribution([100.0, 200.0, 400.0], 300.0)
    assert d["count"] == 3 and d["within_sla_share"] == pytest.approx(0.6667, abs=1e-4)


def test_a_run_starts_at_an_arrival_and_keeps_the_seeded_gaps() -> None:
    for profile in ("nominal", "busy", "surge"):
        schedule = LoadModel(REFERENCE, profile=profile, seed=7).schedule(600)
        assert schedule[0].offset_s == 0.0 and schedule[0].duplicate_of is None
        offsets = [s.offset_s for s in schedule]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    again = LoadModel(REFERENCE, profile="busy", seed=7).schedule(600)
    assert [s.offset_s for s in again] == [
        s.offset_s for s in LoadModel(REFERENCE, profile="busy", seed=7).schedule(600)
    ]


def test_open_incidents_are_on_track_when_the_assigned_eta_is_within_the_sla() -> None:
    o = Outcomes()
    for i in range(4):
        o.on_posted(f"i{i}", department="fire", priority=2, type="t", at_ms=0)
    assigned = dispatch_pb2.DECISION_KIND_ASSIGNED

    def assign(incident_id: str, eta_s: float) -> None:
        o.on_decision(
            dispatch_pb2.DispatchDecision(
                decision_id=f"{incident_id}-a",
                incident_id=incident_id,
                kind=assigned,
                incident_accepted_time_ms=1000,
                decided_time_ms=2000,
                assignments=[dispatch_pb2.Assignment(drone_id="d", eta_seconds=eta_s)],
            )
        )

    assign("i0", 120.0)  # on track
    assign("i1", 400.0)  # assigned, but its drone arrives past the SLA
    o.on_decision(dispatch_pb2.DispatchDecision.FromString(
        decision("i2", dispatch_pb2.DECISION_KIND_QUEUED, 1000, 1100)))  # fmt: skip
    assign("i3", 60.0)
    on_scene = mission_pb2.MISSION_STAGE_ON_SCENE
    o.on_mission(mission_pb2.MissionEvent(incident_id="i3", stage=on_scene, event_time_ms=60_000))
    assert o.on_track(now_ms=100_000, sla=300.0) == (1, 3)  # i3 arrived: no longer open
    # A drone taken away leaves its incident without an ETA until it is assigned again.
    o.on_decision(dispatch_pb2.DispatchDecision.FromString(
        decision("i0", dispatch_pb2.DECISION_KIND_PREEMPTED, 1000, 3000)))  # fmt: skip
    assert o.on_track(now_ms=100_000, sla=300.0) == (0, 3)
    assert o.on_track(now_ms=400_000, sla=300.0) == (0, 0)  # past the SLA: misses, not open


def test_milestones_are_reported_once_each_from_the_outcomes() -> None:
    from entrypoints.dashboard import Milestones

    m = Milestones(started_ms=10_000)
    assert m.reach("stack ready", 15_000) == (
        "milestone stack ready: +5.0 s after start (epoch_ms 15000)"
    )
    assert m.reach("stack ready", 16_000) is None
    o = Outcomes()
    assert m.from_outcomes(o) == []
    o.on_posted("i0", department="fire", priority=1, type="t", at_ms=16_000)
    o.on_decision(dispatch_pb2.DispatchDecision.FromString(
        decision("i0", dispatch_pb2.DECISION_KIND_ASSIGNED, 15_900, 16_100)))  # fmt: skip
    lines = m.from_outcomes(o)
    assert [line.split(":")[0] for line in lines] == [
        "milestone first incident posted",
        "milestone first decision",
    ]
    on_scene = mission_pb2.MISSION_STAGE_ON_SCENE
    o.on_mission(mission_pb2.MissionEvent(incident_id="i0", stage=on_scene, event_time_ms=70_000))
    assert m.from_outcomes(o) == ["milestone first on scene: +60.0 s after start (epoch_ms 70000)"]
    assert m.from_outcomes(o) == []


def test_the_dashboard_says_what_it_waits_for_until_the_first_arrival() -> None:
    from entrypoints.dashboard import Dashboard, Milestones

    dashboard = Dashboard(300.0)
    share = dict(dashboard.rows(None))["on scene within 300 s (arrived)"]
    assert share == "waiting for the first drone on scene"
    milestones = Milestones(started_ms=10_000)
    assert milestones.from_dashboard(dashboard, 20_000) == []
    o = dashboard.outcomes
    o.on_posted("i0", department="fire", priority=1, type="t", at_ms=16_000)
    now = int(time.time() * 1000)
    o.on_decision(dispatch_pb2.DispatchDecision(
        decision_id="d", incident_id="i0", kind=dispatch_pb2.DECISION_KIND_ASSIGNED,
        incident_accepted_time_ms=now, decided_time_ms=now,
        assignments=[dispatch_pb2.Assignment(drone_id="d", eta_seconds=40.0)],
    ))  # fmt: skip
    share = dict(dashboard.rows(None))["on scene within 300 s (arrived)"]
    assert share.startswith("waiting for the first drone on scene (due in ~")
    on_scene = mission_pb2.MISSION_STAGE_ON_SCENE
    o.on_mission(mission_pb2.MissionEvent(incident_id="i0", stage=on_scene, event_time_ms=now))
    assert dict(dashboard.rows(None))["on scene within 300 s (arrived)"] == "100.0 %"
    assert milestones.from_dashboard(dashboard, 70_000) == [
        "milestone SLA share shown: +60.0 s after start (epoch_ms 70000): "
        "100.0 % on scene within 300 s"
    ]
    assert milestones.from_dashboard(dashboard, 71_000) == []
