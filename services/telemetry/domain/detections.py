"""Detection validation: whether a drone's detection may open or join a case, and why not.

Every rejection has its own reason code, carried in the DLQ's airgrid_reason header and the
metrics label, so a gateway's operator can tell a wrong catalogue from a wrong clock.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass

from airgrid.geo import Ring, is_valid_lon_lat, point_in_polygon
from airgrid.v1 import inspection_pb2
from services.telemetry.domain.state import AIRBORNE_MODES
from services.telemetry.domain.validation import MAX_AGE_MS, MAX_FUTURE_SKEW_MS

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_CHARS = 256
MAX_ID_CHARS = 128
# A drone reports what its camera saw a moment ago; one that landed this long after the
# sighting still counts as in flight when the sighting was made.
FLIGHT_SLACK_MS = 10_000


class DetectionReason(enum.StrEnum):
    """Why a detection went to airgrid.detections.dlq."""

    MALFORMED = "malformed"
    """No id, drone, scenario or media URI, or attributes past their bounds."""
    UNKNOWN_DRONE = "unknown_drone"
    UNKNOWN_SCENARIO = "unknown_scenario"
    BAD_CONFIDENCE = "bad_confidence"
    """Outside 0 … 1, or not a number."""
    BAD_MEDIA_SHA256 = "bad_media_sha256"
    """Not 64 lowercase hexadecimal digits."""
    OUTSIDE_ZONE = "outside_zone"
    """Not a valid position, or outside the zone boundary."""
    FUTURE = "future"
    TOO_OLD = "too_old"
    DRONE_NOT_IN_FLIGHT = "drone_not_in_flight"


@dataclass(frozen=True)
class DetectionRejection:
    reason: DetectionReason
    detail: str


@dataclass(frozen=True)
class DroneFlight:
    """What the telemetry state knows of a drone's flight."""

    flight_mode: int
    """telemetry_pb2.FlightMode of its latest fix."""
    last_airborne_ms: int | None
    """Event time of its latest fix in an airborne mode; None when never seen flying."""

    def flying_at(self, time_ms: int) -> bool:
        """In flight now, or was airborne within FLIGHT_SLACK_MS of time_ms or after it."""
        if self.flight_mode in AIRBORNE_MODES:
            return True
        return self.last_airborne_ms is not None and (
            self.last_airborne_ms >= time_ms - FLIGHT_SLACK_MS
        )


def validate_detection(
    detection: inspection_pb2.Detection,
    *,
    known_drones: Container[str],
    scenarios: Container[str],
    boundary: Ring,
    flights: Mapping[str, DroneFlight],
    now_ms: int,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
    max_age_ms: int = MAX_AGE_MS,
) -> DetectionRejection | None:
    """None when the detection is good; else the first rule it breaks, in this order:
    malformed, unknown drone, unknown scenario, confidence, media digest, position, time,
    flight. The flight is judged last because it needs a sane time."""
    problem = _malformed(detection)
    if problem:
        return DetectionRejection(DetectionReason.MALFORMED, problem)
    if detection.drone_id not in known_drones:
        return DetectionRejection(
            DetectionReason.UNKNOWN_DRONE, f"drone {detection.drone_id!r} is not registered"
        )
    if detection.scenario not in scenarios:
        return DetectionRejection(
            DetectionReason.UNKNOWN_SCENARIO,
            f"scenario {detection.scenario!r} is not in the scenario catalogue",
        )
    if not 0.0 <= detection.confidence <= 1.0:
        return DetectionRejection(
            DetectionReason.BAD_CONFIDENCE,
            f"confidence {detection.confidence} is not a number within 0 … 1",
        )
    if SHA256_HEX.fullmatch(detection.media.sha256) is None:
        return DetectionRejection(
            DetectionReason.BAD_MEDIA_SHA256,
            "media.sha256 must be the 64 lowercase hexadecimal digits of a SHA-256",
        )
    if not is_valid_lon_lat(detection.lon, detection.lat) or not point_in_polygon(
        detection.lon, detection.lat, boundary
    ):
        return DetectionRejection(
            DetectionReason.OUTSIDE_ZONE,
            f"({detection.lon}, {detection.lat}) is not a position inside the zone",
        )
    if detection.observed_time_ms > now_ms + max_future_skew_ms:
        return DetectionRejection(
            DetectionReason.FUTURE,
            f"observed {detection.observed_time_ms - now_ms} ms in the future; "
            f"allowed skew is {max_future_skew_ms} ms",
        )
    if detection.observed_time_ms < now_ms - max_age_ms:
        return DetectionRejection(
            DetectionReason.TOO_OLD,
            f"observed {now_ms - detection.observed_time_ms} ms ago; the limit is {max_age_ms} ms",
        )
    flight = flights.get(detection.drone_id)
    if flight is None or not flight.flying_at(detection.observed_time_ms):
        return DetectionRejection(
            DetectionReason.DRONE_NOT_IN_FLIGHT,
            f"drone {detection.drone_id} was not in flight when the detection was observed",
        )
    return None


def _malformed(detection: inspection_pb2.Detection) -> str:
    for name in ("id", "drone_id", "scenario"):
        value = getattr(detection, name)
        if not value:
            return f"{name} is empty"
        if len(value) > MAX_ID_CHARS:
            return f"{name} is over {MAX_ID_CHARS} characters"
    if not detection.media.uri:
        return "media.uri is empty; a detection needs the picture or clip that shows it"
    if not math.isfinite(detection.observed_time_ms) or detection.observed_time_ms <= 0:
        return "observed_time_ms must be a positive epoch time in milliseconds"
    if len(detection.attributes) > MAX_ATTRIBUTES:
        return f"over {MAX_ATTRIBUTES} attributes"
    for key, value in detection.attributes.items():
        if len(key) > MAX_ATTRIBUTE_CHARS or len(value) > MAX_ATTRIBUTE_CHARS:
            return f"attribute {key[:40]!r} is over {MAX_ATTRIBUTE_CHARS} characters"
    return ""
