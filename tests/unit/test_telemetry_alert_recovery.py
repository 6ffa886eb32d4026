"""Unit: a worker that takes a drone over restores its anomaly flags (link lost fires for a
drone silent across the take-over; a raised alert is not raised twice), and alerts wait in
the pending queue until the broker acknowledged them, in order per subject."""

from __future__ import annotations

from airgrid.nofly import NoFlyZone
from services.telemetry.anomaly_takeover import raw_partition
from services.telemetry.domain.anomalies import (
    AlertKind,
    AnomalyDetector,
    AnomalyRules,
    LastSeen,
    Position,
    RaisedAlert,
    Transition,
)
from services.telemetry.pending_alerts import PendingAlert, PendingAlerts

RULES = AnomalyRules(low_battery_pct=25.0, link_lost_ms=15_000, off_route_m=100.0)
SQUARE = NoFlyZone("nfz-1", [(0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01)])


def at(
    drone: str, t_ms: int, *, lon: float = 0.5, lat: float = 0.5, battery: float = 80.0
) -> Position:
    return Position(drone, t_ms, lon, lat, battery, airborne=True)


def kinds(transitions: list[Transition]) -> list[tuple[str, AlertKind, bool]]:
    return [(t.drone_id, t.kind, t.active) for t in transitions]


def test_a_drone_silent_across_a_take_over_gets_its_link_lost_alert() -> None:
    detector = AnomalyDetector(RULES)
    # Last heard of 5 s before the restart; the new worker only sees other drones' records.
    detector.restore("quiet", LastSeen(95_000, 0.5, 0.5), [])
    assert detector.observe(at("busy", 100_000), []) == []
    assert detector.advance(detector.watermark_ms) == []
    detector.observe(at("busy", 110_001), [])
    lost = detector.advance(detector.watermark_ms)
    assert kinds(lost) == [("quiet", AlertKind.LINK_LOST, True)]
    assert (lost[0].lon, lost[0].lat) == (0.5, 0.5)
    # Its next record is a recovery.
    assert kinds(detector.observe(at("quiet", 111_000), [])) == [
        ("quiet", AlertKind.LINK_LOST, False)
    ]


def test_alerts_raised_before_the_take_over_are_not_raised_again() -> None:
    detector = AnomalyDetector(RULES)
    detector.restore(
        "d1",
        LastSeen(100_000, 0.005, 0.005),
        [
            RaisedAlert(AlertKind.LOW_BATTERY, ""),
            RaisedAlert(AlertKind.GEOFENCE_BREACH, "nfz-1"),
        ],
    )
    # Still low and still inside: nothing new.
    assert detector.observe(at("d1", 101_000, lon=0.005, lat=0.005, battery=10.0), [SQUARE]) == []
    # Hysteresis holds: 27 % is not a clear (threshold 25 + 5); 31 % is; leaving clears.
    assert detector.observe(at("d1", 102_000, lon=0.005, lat=0.005, battery=27.0), [SQUARE]) == []
    assert kinds(detector.observe(at("d1", 103_000, lon=0.5, lat=0.5, battery=31.0), [SQUARE])) == [
        ("d1", AlertKind.LOW_BATTERY, False),
        ("d1", AlertKind.GEOFENCE_BREACH, False),
    ]


def test_a_restored_link_loss_is_not_cleared_by_a_replayed_older_record() -> None:
    detector = AnomalyDetector(RULES)
    detector.restore("d1", LastSeen(100_000, 0.5, 0.5), [RaisedAlert(AlertKind.LINK_LOST, "")])
    assert detector.observe(at("d1", 99_000), []) == []  # replayed, older than the silence
    assert detector.advance(130_000) == []  # already raised: not twice
    assert kinds(detector.observe(at("d1", 131_000), [])) == [("d1", AlertKind.LINK_LOST, False)]


def test_restore_keeps_the_flags_of_a_drone_already_watched() -> None:
    detector = AnomalyDetector(RULES)
    detector.observe(at("d1", 100_000, battery=10.0), [])
    detector.restore("d1", LastSeen(50_000, 0.0, 0.0), [])
    assert detector.observe(at("d1", 101_000, battery=10.0), []) == []  # still raised


def pending(alert_id: str, drone: str = "d1", kind: str = "low_battery") -> PendingAlert:
    return PendingAlert(alert_id, drone, kind, "", True, 1_000, [])


def test_a_failed_alert_is_due_again_with_the_same_id_until_acknowledged() -> None:
    queue = PendingAlerts()
    queue.add(pending("a1"))
    assert [a.alert_id for a in queue.due(0)] == ["a1"]
    assert queue.due(0) == []  # in flight: not sent twice at once
    queue.failed("a1")
    again = queue.due(0)
    assert [(a.alert_id, a.attempts) for a in again] == [("a1", 2)]
    assert queue.acknowledged("a1") is not None
    assert len(queue) == 0 and queue.due(0) == []
    assert queue.acknowledged("a1") is None  # a late second acknowledgement is a no-op


def test_an_alert_handed_out_but_not_tried_is_due_again_without_an_attempt() -> None:
    queue = PendingAlerts()
    queue.add(pending("a1"))
    queue.due(0)
    queue.not_sent("a1")
    assert [(a.alert_id, a.attempts) for a in queue.due(0)] == [("a1", 1)]


def test_an_attempt_never_answered_is_tried_again_after_the_ack_timeout() -> None:
    queue = PendingAlerts(ack_timeout_ms=30_000)
    queue.add(pending("a1"))
    queue.due(1_000)
    assert queue.due(30_999) == []
    assert [(a.alert_id, a.attempts) for a in queue.due(31_000)] == [("a1", 2)]


def test_alerts_of_one_subject_leave_in_order_others_do_not_wait() -> None:
    queue = PendingAlerts()
    queue.add(pending("raise"))
    queue.add(pending("clear"))
    queue.add(pending("other", drone="d2"))
    assert [a.alert_id for a in queue.due(0)] == ["raise", "other"]
    queue.failed("raise")
    assert [a.alert_id for a in queue.due(0)] == ["raise"]  # the clear still waits behind it
    queue.acknowledged("raise")
    assert [a.alert_id for a in queue.due(0)] == ["clear"]


def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    queue = PendingAlerts(capacity=2)
    assert queue.add(pending("a1")) == []
    assert queue.add(pending("a2", drone="d2")) == []
    dropped = queue.add(pending("a3", drone="d3"))
    assert [a.alert_id for a in dropped] == ["a1"] and queue.dropped == 1
    assert [a.alert_id for a in queue.due(0)] == ["a2", "a3"]


def test_a_drones_raw_partition_is_the_default_partitioners_pick() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for drone in ("dr-001", "dr-chaos-7", "x"):
        assert raw_partition(drone, 12) == partitioner(drone.encode(), list(range(12)), [])
