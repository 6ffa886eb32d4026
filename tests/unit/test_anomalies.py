"""Unit: anomaly rules raise each alert once per crossing and clear it with hysteresis."""

from __future__ import annotations

from airgrid.nofly import NoFlyZone
from services.telemetry.domain.anomalies import (
    AlertKind,
    AnomalyDetector,
    AnomalyRules,
    Position,
    distance_to_path_m,
)

RULES = AnomalyRules(low_battery_pct=25.0, link_lost_ms=15_000, off_route_m=100.0)
SQUARE = NoFlyZone("nfz-1", [(0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01)])


def at(t_ms: int, *, lon: float = 0.5, lat: float = 0.5, battery: float = 80.0) -> Position:
    return Position("d1", t_ms, lon, lat, battery, airborne=True)


def kinds(transitions: list) -> list[tuple[AlertKind, bool]]:  # type: ignore[type-arg]
    return [(t.kind, t.active) for t in transitions]


def test_low_battery_does_not_flap_around_the_threshold() -> None:
    detector = AnomalyDetector(RULES)
    seen = []
    for t, battery in enumerate([30.0, 24.9, 25.1, 24.8, 26.0, 29.0, 30.5, 24.0]):
        seen += kinds(detector.observe(at(t * 200, battery=battery), []))
    assert seen == [
        (AlertKind.LOW_BATTERY, True),
        (AlertKind.LOW_BATTERY, False),
        (AlertKind.LOW_BATTERY, True),
    ]


def test_link_lost_by_event_time_then_recovery() -> None:
    detector = AnomalyDetector(RULES)
    detector.observe(at(1_000), [])
    assert detector.advance(16_000) == []  # exactly 15 s: not yet
    lost = detector.advance(16_001)
    assert kinds(lost) == [(AlertKind.LINK_LOST, True)]
    assert detector.advance(60_000) == []  # raised once
    assert kinds(detector.observe(at(61_000), [])) == [(AlertKind.LINK_LOST, False)]


def test_geofence_breach_and_exit_once_each() -> None:
    detector = AnomalyDetector(RULES)
    inside = dict(lon=0.005, lat=0.005)
    assert detector.observe(at(0), [SQUARE]) == []
    entered = detector.observe(at(200, **inside), [SQUARE])
    assert kinds(entered) == [(AlertKind.GEOFENCE_BREACH, True)]
    assert entered[0].subject_id == "nfz-1"
    assert detector.observe(at(400, **inside), [SQUARE]) == []
    assert kinds(detector.observe(at(600), [SQUARE])) == [(AlertKind.GEOFENCE_BREACH, False)]


def test_inactive_zone_is_ignored() -> None:
    later = NoFlyZone("nfz-2", SQUARE.ring, active_from_ms=10_000)
    detector = AnomalyDetector(RULES)
    assert detector.observe(at(0, lon=0.005, lat=0.005), [later]) == []


def test_off_route_with_hysteresis() -> None:
    detector = AnomalyDetector(RULES)
    detector.set_path("d1", [(0.0, 0.0), (0.0, 0.1)])
    assert detector.observe(at(0, lon=0.0005, lat=0.05), []) == []  # ~56 m
    off = detector.observe(at(200, lon=0.0012, lat=0.05), [])  # ~134 m
    assert kinds(off) == [(AlertKind.OFF_ROUTE, True)]
    assert detector.observe(at(400, lon=0.0007, lat=0.05), []) == []  # ~78 m, still off
    back = detector.observe(at(600, lon=0.0002, lat=0.05), [])
    assert kinds(back) == [(AlertKind.OFF_ROUTE, False)]


def test_distance_to_path() -> None:
    assert distance_to_path_m(0.0, 0.05, [(0.0, 0.0), (0.0, 0.1)]) < 1.0
    assert 1_100 < distance_to_path_m(0.01, 0.05, [(0.0, 0.0), (0.0, 0.1)]) < 1_125
