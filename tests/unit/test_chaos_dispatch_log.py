"""The judge of the dispatch log on Kafka: what it accepts and what it refuses."""

from __future__ import annotations

from airgrid.v1 import command_pb2, dispatch_pb2, mission_pb2
from loadtests.chaos.dispatch_log import DispatchLog, judge

ASSIGNED = dispatch_pb2.DECISION_KIND_ASSIGNED


def assigned(
    incident: str, slot: int, mission: str, drone: str, at: int
) -> dispatch_pb2.DispatchDecision:
    decision = dispatch_pb2.DispatchDecision(
        incident_id=incident, kind=ASSIGNED, decided_time_ms=at
    )
    decision.assignments.add(mission_id=mission, drone_id=drone, slot=slot)
    return decision


def launch(drone: str, mission: str, at: int) -> command_pb2.DroneCommand:
    return command_pb2.DroneCommand(
        drone_id=drone, mission_id=mission, kind=command_pb2.COMMAND_KIND_LAUNCH, issued_time_ms=at
    )


def ended(mission: str, at: int) -> mission_pb2.MissionEvent:
    return mission_pb2.MissionEvent(
        mission_id=mission, stage=mission_pb2.MISSION_STAGE_CANCELLED, event_time_ms=at
    )


def test_a_preemption_that_ends_the_first_mission_is_accepted() -> None:
    log = DispatchLog(
        decisions=[assigned("inc-1", 0, "m1", "d1", 1), assigned("inc-2", 0, "m2", "d1", 5)],
        commands=[launch("d1", "m1", 1), launch("d1", "m1", 2), launch("d1", "m2", 5)],
        mission_events=[ended("m1", 5)],
    )
    assert judge(log) == []
    assert log.active_missions() == {"m2"}


def test_a_drone_sent_on_a_second_mission_before_the_first_ended_is_refused() -> None:
    log = DispatchLog(
        decisions=[assigned("inc-1", 0, "m1", "d1", 1), assigned("inc-2", 0, "m2", "d2", 5)],
        commands=[launch("d1", "m1", 1), launch("d1", "m2", 5)],
        mission_events=[ended("m1", 9)],
    )
    assert judge(log) == ["d1 sent on m2 while still on m1"]


def test_a_slot_given_a_second_drone_while_the_first_flies_is_refused() -> None:
    log = DispatchLog(
        decisions=[assigned("inc-1", 0, "m1", "d1", 1), assigned("inc-1", 0, "m2", "d2", 5)],
    )
    assert judge(log) == ["slot 0 of inc-1: m2 assigned while m1 still flies"]


def test_a_mission_assigned_by_two_decisions_is_refused() -> None:
    log = DispatchLog(
        decisions=[assigned("inc-1", 0, "m1", "d1", 1), assigned("inc-1", 0, "m1", "d1", 5)],
    )
    assert judge(log) == ["mission m1 assigned by two decisions"]
