"""Unit tests of the fault suite's "no alert lost" rule (loadtests/chaos/alert_rule.py)."""

from __future__ import annotations

from loadtests.chaos.alert_rule import Condition, ObservedAlert, by_phase, judge

SILENT = Condition("d1", "link_lost", "steady", event_ms=10_000)
LOW = Condition("d2", "low_battery", "broker-down", event_ms=20_000)


def alert(alert_id: str, drone: str, kind: str, at: int, active: bool = True) -> ObservedAlert:
    return ObservedAlert(alert_id, drone, kind, active, at)


def test_a_condition_with_its_alert_is_alerted() -> None:
    verdict = judge([SILENT], [alert("a", "d1", "link_lost", 25_000)])
    assert verdict.ok
    assert verdict.alerted == {SILENT: 1}
    assert verdict.duplicates == 0


def test_a_condition_without_an_alert_is_lost() -> None:
    verdict = judge([SILENT, LOW], [alert("a", "d1", "link_lost", 25_000)])
    assert not verdict.ok
    assert verdict.lost == [LOW]
    assert by_phase(verdict, [SILENT, LOW]) == {"steady": (1, 1), "broker-down": (0, 1)}


def test_an_alert_from_before_the_injection_does_not_count() -> None:
    # The whole stream went silent during the broker outage, before this drone did.
    verdict = judge([SILENT], [alert("a", "d1", "link_lost", 9_000)])
    assert verdict.lost == [SILENT]
    assert verdict.unmatched == {"link_lost": 1}


def test_a_clearing_alert_another_kind_or_another_drone_does_not_count() -> None:
    alerts = [
        alert("a", "d1", "link_lost", 30_000, active=False),
        alert("b", "d1", "low_battery", 30_000),
        alert("c", "d9", "link_lost", 30_000),
    ]
    verdict = judge([SILENT], alerts)
    assert verdict.lost == [SILENT]
    assert verdict.unmatched == {"low_battery": 1, "link_lost": 1}


def test_raised_again_after_a_restart_counts_as_duplicates_and_one_record_read_twice_not() -> None:
    alerts = [
        alert("a", "d2", "low_battery", 21_000),
        alert("a", "d2", "low_battery", 21_000),  # the same record, read again
        alert("b", "d2", "low_battery", 40_000),  # raised again by a restarted worker
    ]
    verdict = judge([LOW], alerts)
    assert verdict.ok
    assert verdict.alerted == {LOW: 2}
    assert verdict.duplicates == 1
