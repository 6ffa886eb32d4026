"""Detection validation: every bad kind gets its own reason code, and a good detection none."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airgrid.geo import point_in_polygon
from airgrid.reference import load_reference
from airgrid.v1 import inspection_pb2, telemetry_pb2
from services.telemetry.domain.detections import (
    FLIGHT_SLACK_MS,
    DetectionReason,
    DroneFlight,
    validate_detection,
)
from services.telemetry.domain.validation import MAX_AGE_MS, MAX_FUTURE_SKEW_MS

REFERENCE = load_reference()
BOUNDARY = REFERENCE.zone.boundary
DRONES = {d.id for d in REFERENCE.drones}
SCENARIOS = {s.code for s in REFERENCE.scenarios}
NOW_MS = 1_800_000_000_000
FLYING = DroneFlight(telemetry_pb2.FLIGHT_MODE_CRUISING, NOW_MS)
DOCKED_LONG_AGO = DroneFlight(telemetry_pb2.FLIGHT_MODE_DOCKED, NOW_MS - 3_600_000)
SHA = "ab" * 32


def _good(**changes: object) -> inspection_pb2.Detection:
    centre = REFERENCE.zone.centre
    detection = inspection_pb2.Detection(
        id="det-1",
        drone_id="drone-001",
        mission_id="m-1",
        scenario="smoke",
        confidence=0.9,
        lon=centre[0],
        lat=centre[1],
        observed_time_ms=NOW_MS - 1_000,
        media=inspection_pb2.MediaRef(uri="s3://media/det-1.jpg", sha256=SHA),
        attributes={"algorithm": "smoke-v3"},
    )
    for name, value in changes.items():
        setattr(detection, name, value)
    return detection


def _check(
    detection: inspection_pb2.Detection, flights: dict[str, DroneFlight] | None = None
) -> DetectionReason | None:
    rejection = validate_detection(
        detection,
        known_drones=DRONES,
        scenarios=SCENARIOS,
        boundary=BOUNDARY,
        flights={"drone-001": FLYING} if flights is None else flights,
        now_ms=NOW_MS,
    )
    return None if rejection is None else rejection.reason


def _with_media(uri: str, sha256: str) -> inspection_pb2.Detection:
    detection = _good()
    detection.media.CopyFrom(inspection_pb2.MediaRef(uri=uri, sha256=sha256))
    return detection


def test_the_reference_catalogue_has_the_smoke_scenario() -> None:
    assert "smoke" in SCENARIOS
    assert _check(_good()) is None


BAD: list[tuple[str, Callable[[], inspection_pb2.Detection], DetectionReason]] = [
    ("no id", lambda: _good(id=""), DetectionReason.MALFORMED),
    ("no media uri", lambda: _with_media("", SHA), DetectionReason.MALFORMED),
    ("unknown drone", lambda: _good(drone_id="drone-999"), DetectionReason.UNKNOWN_DRONE),
    ("unknown scenario", lambda: _good(scenario="ufo"), DetectionReason.UNKNOWN_SCENARIO),
    ("confidence over 1", lambda: _good(confidence=1.5), DetectionReason.BAD_CONFIDENCE),
    ("negative confidence", lambda: _good(confidence=-0.1), DetectionReason.BAD_CONFIDENCE),
    ("NaN confidence", lambda: _good(confidence=math.nan), DetectionReason.BAD_CONFIDENCE),
    ("short digest", lambda: _with_media("s3://x", "ab" * 31), DetectionReason.BAD_MEDIA_SHA256),
    (
        "upper-case digest",
        lambda: _with_media("s3://x", "AB" * 32),
        DetectionReason.BAD_MEDIA_SHA256,
    ),
    ("non-hex digest", lambda: _with_media("s3://x", "zz" * 32), DetectionReason.BAD_MEDIA_SHA256),
    ("outside the zone", lambda: _good(lon=0.0, lat=0.0), DetectionReason.OUTSIDE_ZONE),
    ("invalid position", lambda: _good(lat=math.inf), DetectionReason.OUTSIDE_ZONE),
    (
        "future beyond skew",
        lambda: _good(observed_time_ms=NOW_MS + MAX_FUTURE_SKEW_MS + 1),
        DetectionReason.FUTURE,
    ),
    (
        "too old",
        lambda: _good(observed_time_ms=NOW_MS - MAX_AGE_MS - 1),
        DetectionReason.TOO_OLD,
    ),
]


@pytest.mark.parametrize(("kind", "make", "reason"), BAD, ids=[b[0] for b in BAD])
def test_each_bad_kind_has_its_reason(
    kind: str, make: Callable[[], inspection_pb2.Detection], reason: DetectionReason
) -> None:
    assert _check(make()) is reason, kind


def test_the_reasons_are_distinct_codes_and_all_exercised() -> None:
    exercised = {reason for _, _, reason in BAD} | {DetectionReason.DRONE_NOT_IN_FLIGHT}
    assert exercised == set(DetectionReason)
    assert len({r.value for r in DetectionReason}) == len(DetectionReason)


def test_a_drone_not_in_flight_is_refused() -> None:
    assert _check(_good(), {"drone-001": DOCKED_LONG_AGO}) is DetectionReason.DRONE_NOT_IN_FLIGHT
    assert _check(_good(), {}) is DetectionReason.DRONE_NOT_IN_FLIGHT


def test_a_drone_that_landed_just_after_the_sighting_was_in_flight() -> None:
    observed = NOW_MS - 20_000
    landed = DroneFlight(telemetry_pb2.FLIGHT_MODE_DOCKED, observed - FLIGHT_SLACK_MS + 1)
    assert _check(_good(observed_time_ms=observed), {"drone-001": landed}) is None
    earlier = DroneFlight(telemetry_pb2.FLIGHT_MODE_DOCKED, observed - FLIGHT_SLACK_MS - 1)
    reason = _check(_good(observed_time_ms=observed), {"drone-001": earlier})
    assert reason is DetectionReason.DRONE_NOT_IN_FLIGHT


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_confidence_is_accepted_exactly_within_0_and_1(confidence: float) -> None:
    reason = _check(_good(confidence=confidence))
    if 0.0 <= confidence <= 1.0:
        assert reason is None
    else:
        assert reason is DetectionReason.BAD_CONFIDENCE


@given(st.text(alphabet="0123456789abcdefABCDEFxyz", max_size=70))
def test_only_64_lowercase_hex_digits_are_a_digest(digest: str) -> None:
    reason = _check(_with_media("s3://x", digest))
    good = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    assert (reason is None) == good
    if not good:
        assert reason is DetectionReason.BAD_MEDIA_SHA256


@given(
    st.floats(min_value=114.1, max_value=114.8),
    st.floats(min_value=30.3, max_value=30.7),
)
def test_a_position_is_accepted_exactly_inside_the_zone(lon: float, lat: float) -> None:
    reason = _check(_good(lon=lon, lat=lat))
    if point_in_polygon(lon, lat, BOUNDARY):
        assert reason is None
    else:
        assert reason is DetectionReason.OUTSIDE_ZONE


@given(st.integers(min_value=-2 * MAX_AGE_MS, max_value=2 * MAX_FUTURE_SKEW_MS))
def test_observed_time_is_accepted_within_skew_and_age(offset_ms: int) -> None:
    reason = _check(_good(observed_time_ms=NOW_MS + offset_ms))
    if offset_ms > MAX_FUTURE_SKEW_MS:
        assert reason is DetectionReason.FUTURE
    elif offset_ms < -MAX_AGE_MS:
        assert reason is DetectionReason.TOO_OLD
    else:
        assert reason is None
