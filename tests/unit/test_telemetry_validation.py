"""Unit tests of the pure telemetry rules: every rejection reason, its boundaries, the fold."""

from __future__ import annotations

import math

import pytest

from airgrid.v1 import drone_state_pb2, telemetry_pb2
from services.telemetry.domain.state import apply
from services.telemetry.domain.validation import (
    MAX_AGE_MS,
    MAX_FUTURE_SKEW_MS,
    LastFix,
    Reason,
    validate,
)

NOW = 1_760_000_000_000
KNOWN = frozenset({"dr-1", "dr-2"})


def record(**overrides: object) -> telemetry_pb2.Telemetry:
    fields: dict[str, object] = {
        "drone_id": "dr-1",
        "seq": 10,
        "event_time_ms": NOW - 200,
        "lon": 121.47,
        "lat": 31.23,
        "alt_m": 120.0,
        "ground_speed_mps": 15.0,
        "heading_deg": 90.0,
        "battery_pct": 80.0,
        "flight_mode": telemetry_pb2.FLIGHT_MODE_CRUISING,
        "nest_id": "nest-1",
    }
    fields.update(overrides)
    return telemetry_pb2.Telemetry(**fields)  # type: ignore[arg-type]


def reason_of(rec: telemetry_pb2.Telemetry, last_seq: int | None = 9) -> Reason | None:
    """The record checked against a last fix of the same event time and position."""
    last = None if last_seq is None else LastFix(last_seq, rec.event_time_ms, rec.lon, rec.lat)
    rejection = validate(rec, known_drones=KNOWN, last=last, now_ms=NOW)
    return rejection.reason if rejection is not None else None


def test_a_good_record_passes() -> None:
    assert reason_of(record()) is None
    assert reason_of(record(), last_seq=None) is None


@pytest.mark.parametrize("drone_id", ["dr-9", ""])
def test_unregistered_or_missing_drone_is_unknown(drone_id: str) -> None:
    assert reason_of(record(drone_id=drone_id)) is Reason.UNKNOWN_DRONE


@pytest.mark.parametrize(
    "field",
    [
        "lon",
        "lat",
        "alt_m",
        "ground_speed_mps",
        "vertical_speed_mps",
        "heading_deg",
        "battery_pct",
        "wind_mps",
    ],
)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_out_of_range(field: str, value: float) -> None:
    assert reason_of(record(**{field: value})) is Reason.OUT_OF_RANGE


@pytest.mark.parametrize(
    ("field", "ok", "bad"),
    [
        ("lon", [-180.0, 180.0], [-180.0001, 180.0001]),
        ("lat", [-90.0, 90.0], [-90.0001, 90.0001]),
        ("alt_m", [-100.0, 10_000.0], [-100.01, 10_000.01]),
        ("battery_pct", [0.0, 100.0], [-0.01, 100.01]),
        ("ground_speed_mps", [0.0, 100.0], [-0.01, 100.01]),
        ("heading_deg", [0.0, 359.999], [-0.01, 360.0]),
    ],
)
def test_range_boundaries(field: str, ok: list[float], bad: list[float]) -> None:
    for value in ok:
        assert reason_of(record(**{field: value})) is None, (field, value)
    for value in bad:
        assert reason_of(record(**{field: value})) is Reason.OUT_OF_RANGE, (field, value)


def test_unknown_flight_mode_is_out_of_range() -> None:
    assert reason_of(record(flight_mode=42)) is Reason.OUT_OF_RANGE


def test_future_beyond_the_skew() -> None:
    assert reason_of(record(event_time_ms=NOW + MAX_FUTURE_SKEW_MS)) is None
    assert reason_of(record(event_time_ms=NOW + MAX_FUTURE_SKEW_MS + 1)) is Reason.FUTURE


def test_too_old_beyond_the_max_age() -> None:
    assert reason_of(record(event_time_ms=NOW - MAX_AGE_MS)) is None
    assert reason_of(record(event_time_ms=NOW - MAX_AGE_MS - 1)) is Reason.TOO_OLD


def test_skew_and_age_are_parameters() -> None:
    rec = record(event_time_ms=NOW + 100)
    rejection = validate(rec, known_drones=KNOWN, last=None, now_ms=NOW, max_future_skew_ms=50)
    assert rejection is not None and rejection.reason is Reason.FUTURE
    rec = record(event_time_ms=NOW - 100)
    rejection = validate(rec, known_drones=KNOWN, last=None, now_ms=NOW, max_age_ms=50)
    assert rejection is not None and rejection.reason is Reason.TOO_OLD


def test_sequence_duplicate_and_out_of_order() -> None:
    assert reason_of(record(seq=10), last_seq=10) is Reason.DUPLICATE
    assert reason_of(record(seq=9), last_seq=10) is Reason.OUT_OF_ORDER
    assert reason_of(record(seq=11), last_seq=10) is None
    assert reason_of(record(seq=0), last_seq=None) is None


def check(rec: telemetry_pb2.Telemetry, last: LastFix, **kw: float) -> Reason | None:
    rejection = validate(rec, known_drones=KNOWN, last=last, now_ms=NOW, **kw)  # type: ignore[arg-type]
    return rejection.reason if rejection is not None else None


POISON_SEQ = 2**63 - 1


def test_a_newer_event_time_wins_over_a_lower_seq_a_reset() -> None:
    poisoned = LastFix(POISON_SEQ, NOW - 1_000, 121.47, 31.23)
    assert check(record(seq=11, event_time_ms=NOW - 800), poisoned) is None
    assert check(record(seq=0, event_time_ms=NOW - 800), poisoned) is None  # gateway restarted


def test_an_older_event_time_is_out_of_order_whatever_its_seq() -> None:
    last = LastFix(10, NOW - 200, 121.47, 31.23)
    assert check(record(seq=POISON_SEQ, event_time_ms=NOW - 400), last) is Reason.OUT_OF_ORDER
    assert check(record(seq=10, event_time_ms=NOW - 400), last) is Reason.DUPLICATE


def test_a_record_stream_survives_one_absurd_seq() -> None:
    """Fold the decisions like the worker: after the poison record every true one is taken."""
    last: LastFix | None = LastFix(10, NOW - 10_000, 121.47, 31.23)
    poison = record(seq=POISON_SEQ, event_time_ms=NOW - 9_000)
    stream = [poison] + [record(seq=11 + k, event_time_ms=NOW - 8_000 + 200 * k) for k in range(5)]
    taken = []
    for rec in stream:
        if validate(rec, known_drones=KNOWN, last=last, now_ms=NOW) is None:
            last = LastFix.of(rec)
            taken.append(rec.seq)
    assert taken == [POISON_SEQ, 11, 12, 13, 14, 15]


def test_a_fix_10000_km_from_the_last_a_second_later_is_an_implausible_move() -> None:
    last = LastFix(10, NOW - 1_200, 121.47, 31.23)
    far = record(seq=11, event_time_ms=NOW - 200, lon=31.47, lat=31.23)  # about 8,600 km west
    assert check(far, last, max_speed_mps=23.0) is Reason.IMPLAUSIBLE_MOVE
    rejection = validate(far, known_drones=KNOWN, last=last, now_ms=NOW)
    assert rejection is not None and "m/s" in rejection.detail


def test_a_move_within_the_model_speed_and_margin_passes() -> None:
    last = LastFix(10, NOW - 1_200, 121.47, 31.23)
    # 1 s at 23 m/s with a margin of 2, plus the fix noise: 246 m passes, 300 m does not.
    near = record(seq=11, event_time_ms=NOW - 200, lon=121.47 + 246 / 95_300, lat=31.23)
    assert check(near, last, max_speed_mps=23.0) is None
    beyond = record(seq=11, event_time_ms=NOW - 200, lon=121.47 + 300 / 95_300, lat=31.23)
    assert check(beyond, last, max_speed_mps=23.0) is Reason.IMPLAUSIBLE_MOVE


def test_an_old_last_fix_does_not_hold_the_drone_forever() -> None:
    wrong = LastFix(10, NOW - 120_000, 31.47, 31.23)  # a wrong fix two minutes ago
    assert check(record(seq=11), wrong, max_speed_mps=23.0) is None


def test_reason_codes_are_the_dlq_header_values() -> None:
    assert {r.value for r in Reason} == {
        "malformed",
        "unknown_drone",
        "out_of_range",
        "future",
        "too_old",
        "duplicate",
        "out_of_order",
        "implausible_move",
    }
    assert Reason.OUT_OF_RANGE.encode() == b"out_of_range"


def test_rejection_carries_a_detail() -> None:
    rejection = validate(record(battery_pct=120.0), known_drones=KNOWN, last=None, now_ms=NOW)
    assert rejection is not None and "battery_pct" in rejection.detail


def test_apply_builds_the_state_from_the_record() -> None:
    rec = record(mission_id="m-1", faults=["gps-degraded"], wind_mps=4.0)
    state = apply(None, rec, applied_ms=NOW)
    assert state.drone_id == "dr-1"
    assert state.last_seq == 10
    assert state.event_time_ms == NOW - 200
    assert state.applied_time_ms == NOW
    assert (state.lon, state.lat, state.alt_m) == (121.47, 31.23, 120.0)
    assert state.flight_mode == telemetry_pb2.FLIGHT_MODE_CRUISING
    assert state.mission_id == "m-1"
    assert list(state.faults) == ["gps-degraded"]
    assert state.link_ok is True


def test_apply_keeps_the_last_known_nest_but_not_the_mission() -> None:
    previous = drone_state_pb2.DroneState(drone_id="dr-1", nest_id="nest-1", mission_id="m-1")
    state = apply(previous, record(nest_id="", mission_id=""), applied_ms=NOW)
    assert state.nest_id == "nest-1"
    assert state.mission_id == ""
