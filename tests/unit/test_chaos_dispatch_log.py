"""The checks of the dispatch log on Kafka: what they accept and what they refuse, and a record
published twice read as one (consumers deduplicate on ce_id)."""

from __future__ import annotations

from airgrid.v1 import command_pb2, dispatch_pb2, mission_pb2
from loadtests.chaos.dispatch_log import DispatchLog, double_assignments, drones_twice, judge

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


def read_back(records: list[tuple[str, bytes]]) -> list[dispatch_pb2.DispatchDecision]:
    """The decisions of a log that read these (ce_id, value) records, in order."""
    log = DispatchLog()
    for ce_id, value in records:
        log.add_decision(value, ce_id)
    return log.decisions


def freed(decision_id: str, kind: int) -> tuple[str, bytes]:
    decision = dispatch_pb2.DispatchDecision(decision_id=decision_id, incident_id="i1", kind=kind)  # type: ignore[arg-type]
    return decision_id, decision.SerializeToString()


def rec(decision_id: str, mission: str, drone: str, at: int, slot: int = 0) -> tuple[str, bytes]:
    """An assignment record of incident i1, its ce_id the decision id."""
    decision = dispatch_pb2.DispatchDecision(
        decision_id=decision_id, incident_id="i1", kind=ASSIGNED, decided_time_ms=at
    )
    decision.assignments.add(mission_id=mission, drone_id=drone, slot=slot)
    return decision_id, decision.SerializeToString()


def test_a_record_published_twice_is_one_decision() -> None:
    record = rec("d1", "m1", "drone-001", 1)
    log = DispatchLog()
    for ce_id, value in (record, record):
        log.add_decision(value, ce_id)
    assert (log.decision_records, len(log.decisions)) == (2, 1)
    assert double_assignments(log.decisions) == []


def test_a_slot_assigned_twice_is_found() -> None:
    decisions = read_back([rec("d1", "m1", "drone-001", 1), rec("d2", "m2", "drone-002", 2)])
    assert double_assignments(decisions) == ["incident i1 slot 0 assigned twice"]


def test_a_slot_freed_may_be_assigned_again() -> None:
    redispatched = freed("d2", dispatch_pb2.DECISION_KIND_REDISPATCHED)
    decisions = read_back(
        [rec("d1", "m1", "drone-001", 1), redispatched, rec("d3", "m2", "drone-002", 3)]
    )
    assert double_assignments(decisions) == []


def test_a_drone_on_two_missions_at_once_is_found() -> None:
    decisions = read_back(
        [rec("d1", "m1", "drone-001", 1), rec("d2", "m2", "drone-001", 5, slot=1)]
    )
    ended = mission_pb2.MissionEvent(
        mission_id="m1", stage=mission_pb2.MISSION_STAGE_COMPLETED, event_time_ms=5
    )
    assert drones_twice(decisions, [ended]) == []
    late = mission_pb2.MissionEvent(
        mission_id="m1", stage=mission_pb2.MISSION_STAGE_COMPLETED, event_time_ms=9
    )
    assert drones_twice(decisions, [late]) == ["drone drone-001: mission m2 while m1 was on"]
