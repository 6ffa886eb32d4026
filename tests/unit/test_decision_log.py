"""The checks on the decisions read back from Kafka: a record published twice is one decision
(consumers deduplicate on ce_id), a slot or a drone given twice is found."""

from __future__ import annotations

from airgrid.v1 import dispatch_pb2, mission_pb2
from loadtests.chaos.decision_log import Logged, decisions_of, double_assignments, drones_twice

ASSIGNED = dispatch_pb2.DECISION_KIND_ASSIGNED


def assigned(decision_id: str, mission: str, drone: str, at: int, slot: int = 0) -> Logged:
    decision = dispatch_pb2.DispatchDecision(
        decision_id=decision_id, incident_id="i1", kind=ASSIGNED, decided_time_ms=at
    )
    decision.assignments.add(mission_id=mission, drone_id=drone, slot=slot)
    return Logged(decision_id, 0, at, decision.SerializeToString())


def freed(decision_id: str, kind: int) -> Logged:
    decision = dispatch_pb2.DispatchDecision(decision_id=decision_id, incident_id="i1", kind=kind)  # type: ignore[arg-type]
    return Logged(decision_id, 0, 0, decision.SerializeToString())


def test_a_record_published_twice_is_one_decision() -> None:
    record = assigned("d1", "m1", "drone-001", 1)
    assert double_assignments(decisions_of([record, record])) == []


def test_a_slot_assigned_twice_is_found() -> None:
    decisions = decisions_of(
        [assigned("d1", "m1", "drone-001", 1), assigned("d2", "m2", "drone-002", 2)]
    )
    assert double_assignments(decisions) == ["incident i1 slot 0 assigned twice"]


def test_a_slot_freed_may_be_assigned_again() -> None:
    redispatched = freed("d2", dispatch_pb2.DECISION_KIND_REDISPATCHED)
    decisions = decisions_of(
        [assigned("d1", "m1", "drone-001", 1), redispatched, assigned("d3", "m2", "drone-002", 3)]
    )
    assert double_assignments(decisions) == []


def test_a_drone_on_two_missions_at_once_is_found() -> None:
    decisions = decisions_of(
        [assigned("d1", "m1", "drone-001", 1), assigned("d2", "m2", "drone-001", 5, slot=1)]
    )
    ended = mission_pb2.MissionEvent(
        mission_id="m1", stage=mission_pb2.MISSION_STAGE_COMPLETED, event_time_ms=5
    )
    assert drones_twice(decisions, [ended]) == []
    late = mission_pb2.MissionEvent(
        mission_id="m1", stage=mission_pb2.MISSION_STAGE_COMPLETED, event_time_ms=9
    )
    assert drones_twice(decisions, [late]) == ["drone drone-001: mission m2 while m1 was on"]
