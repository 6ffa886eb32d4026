"""DJI Cloud API (dock and aircraft over MQTT) ↔ air grid, pure: topics, the envelope
(`tid`, `bid`, `timestamp`, `data`), the fields of dock and aircraft OSD, and the `services`
requests commands become. No network and no clock here.

Units as the Cloud API documents them: degrees, metres (`elevation` is above the take-off
point), m/s, `attitude_head` in -180..180, aircraft `wind_speed` in 0.1 m/s, dock
`wind_speed` in m/s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from airgrid.v1 import command_pb2, inspection_pb2
from airgrid.v1.telemetry_pb2 import FlightMode

OSD = "osd"
STATE = "state"
SERVICES = "services"
SERVICES_REPLY = "services_reply"
EVENTS = "events"
# The device event a dock relays for each sighting of its aircraft's onboard detector.
DETECTION_METHOD = "ai_detection"
SHA256_HEX_DIGITS = 64
HOVER_SPEED_MPS = 0.5

# Aircraft mode_code → flight mode; None: the aircraft is not connected (no record).
_TAKING_OFF = (1, 2, 4, 18, 19)
_FLYING = (3, 5, 6, 7, 8, 15, 16, 17, 20)
_LANDING = (10, 11, 12)
AIRCRAFT_NOT_CONNECTED = 14
# The twin's flight mode → the mode code a DJI aircraft reports in it.
MODE_CODE_OF_FLIGHT: dict[int, int] = {
    FlightMode.FLIGHT_MODE_DOCKED: 0,
    FlightMode.FLIGHT_MODE_TAKING_OFF: 4,
    FlightMode.FLIGHT_MODE_CRUISING: 5,
    FlightMode.FLIGHT_MODE_HOVERING: 5,
    FlightMode.FLIGHT_MODE_RETURNING: 9,
    FlightMode.FLIGHT_MODE_LANDING: 10,
}
# Dock mode_code: 0 idle, 1 on-site debugging, 2 remote debugging, 3 upgrading, 4 working.
DOCK_ONLINE_MODES = (0, 4)


class PayloadError(ValueError):
    """An MQTT payload the gateway cannot use; `reason` is the metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Envelope:
    tid: str
    bid: str
    timestamp_ms: int
    data: dict[str, Any]
    method: str = ""


def parse_topic(topic: str, prefix: str = "") -> tuple[str, str] | None:
    """(serial number, kind) of `{prefix}thing/product/{sn}/{kind}`; None for other topics."""
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 4 or parts[0] != "thing" or parts[1] != "product" or not parts[2]:
        return None
    return parts[2], parts[3]


def topic_of(sn: str, kind: str, prefix: str = "") -> str:
    return f"{prefix}thing/product/{sn}/{kind}"


def parse_envelope(payload: bytes) -> Envelope:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise PayloadError("not_json", f"payload is not JSON ({error})") from error
    if not isinstance(body, dict):
        raise PayloadError("not_object", "payload is JSON but not an object")
    missing = [name for name in ("tid", "bid", "timestamp", "data") if name not in body]
    if missing:
        raise PayloadError("missing_field", f"envelope lacks {', '.join(missing)}")
    data, timestamp = body["data"], body["timestamp"]
    if not isinstance(data, dict):
        raise PayloadError("bad_field", "envelope `data` is not an object")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        raise PayloadError("bad_field", "envelope `timestamp` is not a number of ms")
    return Envelope(
        str(body["tid"]), str(body["bid"]), int(timestamp), data, str(body.get("method", ""))
    )


def _number(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    kind = type(value)
    if kind is int:
        return float(value)  # type: ignore[arg-type]
    if kind is float:
        if value - value == 0.0:  # type: ignore[operator]  # false for inf and nan
            return value  # type: ignore[return-value]
        raise PayloadError("bad_field", f"data `{name}` is not finite")
    if value is None:
        raise PayloadError("missing_field", f"data lacks `{name}`")
    raise PayloadError("bad_field", f"data `{name}` is not a number")


@dataclass(frozen=True)
class AircraftReport:
    mode_code: int
    lon: float
    lat: float
    alt_m: float
    ground_speed_mps: float
    vertical_speed_mps: float
    heading_deg: float
    battery_pct: float
    wind_mps: float

    def flight_mode(self, *, in_dock: bool) -> int | None:
        code = self.mode_code
        if code == AIRCRAFT_NOT_CONNECTED:
            return None
        if code in _TAKING_OFF:
            return FlightMode.FLIGHT_MODE_TAKING_OFF
        if code == 9:
            return FlightMode.FLIGHT_MODE_RETURNING
        if code in _LANDING:
            return FlightMode.FLIGHT_MODE_LANDING
        if code in (0, 13):
            if in_dock or self.alt_m < 0.5:
                return FlightMode.FLIGHT_MODE_DOCKED
            return FlightMode.FLIGHT_MODE_HOVERING
        if code in _FLYING and self.ground_speed_mps >= HOVER_SPEED_MPS:
            return FlightMode.FLIGHT_MODE_CRUISING
        return FlightMode.FLIGHT_MODE_HOVERING


def aircraft_report(data: dict[str, Any]) -> AircraftReport:
    battery = data.get("battery")
    if not isinstance(battery, dict):
        raise PayloadError("missing_field", "data lacks `battery` object")
    return AircraftReport(
        mode_code=int(_number(data, "mode_code")),
        lon=_number(data, "longitude"),
        lat=_number(data, "latitude"),
        alt_m=_number(data, "elevation"),
        ground_speed_mps=_number(data, "horizontal_speed"),
        vertical_speed_mps=_number(data, "vertical_speed"),
        heading_deg=_number(data, "attitude_head") % 360.0,
        battery_pct=_number(battery, "capacity_percent"),
        wind_mps=_number(data, "wind_speed") / 10.0 if "wind_speed" in data else 0.0,
    )


@dataclass(frozen=True)
class DockReport:
    mode_code: int
    lon: float
    lat: float
    wind_mps: float
    drone_in_dock: bool
    aircraft_sn: str
    aircraft_battery_pct: float | None

    @property
    def online(self) -> bool:
        return self.mode_code in DOCK_ONLINE_MODES


def dock_report(data: dict[str, Any]) -> DockReport:
    sub = data.get("sub_device")
    charge = data.get("drone_charge_state")
    battery = None
    if isinstance(charge, dict) and "capacity_percent" in charge:
        battery = _number(charge, "capacity_percent")
    return DockReport(
        mode_code=int(_number(data, "mode_code")),
        lon=_number(data, "longitude"),
        lat=_number(data, "latitude"),
        wind_mps=_number(data, "wind_speed"),
        drone_in_dock=bool(_number(data, "drone_in_dock")),
        aircraft_sn=str(sub.get("device_sn", "")) if isinstance(sub, dict) else "",
        aircraft_battery_pct=battery,
    )


def is_dock_payload(data: dict[str, Any]) -> bool:
    return "drone_in_dock" in data


# -- detection events ---------------------------------------------------------------------------


def _text(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if value is None:
        raise PayloadError("detection_missing_field", f"detection data lacks `{name}`")
    if not isinstance(value, str) or (required and not value):
        raise PayloadError("detection_bad_field", f"detection `{name}` is not a non-empty string")
    return value


def _detection_number(data: dict[str, Any], name: str) -> float:
    try:
        return _number(data, name)
    except PayloadError as error:
        raise PayloadError(f"detection_{error.reason}", f"detection {error}") from error


def detection_of(envelope: Envelope) -> tuple[str, inspection_pb2.Detection]:
    """(aircraft serial, detection) of an `ai_detection` event; the detection's drone and
    mission are the gateway's to fill in. Its id is the event's `bid`, which the device keeps
    when it resends the event, so a resend is the same detection.

    `data`: `sn` (aircraft), `scenario_code`, `confidence` (0 … 1), `longitude`, `latitude`
    (of the thing seen), `observed_time` (ms), `media` {`url`, `sha256`}, optional
    `attributes` (an object of strings)."""
    data = envelope.data
    if not envelope.bid:
        raise PayloadError("detection_missing_field", "detection event has an empty `bid`")
    sn = _text(data, "sn")
    confidence = _detection_number(data, "confidence")
    if not 0.0 <= confidence <= 1.0:
        raise PayloadError("detection_bad_field", f"confidence {confidence} is outside 0 … 1")
    lon, lat = _detection_number(data, "longitude"), _detection_number(data, "latitude")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise PayloadError("detection_bad_field", f"({lon}, {lat}) is not a position")
    observed = data.get("observed_time")
    if isinstance(observed, bool) or not isinstance(observed, int) or observed <= 0:
        raise PayloadError("detection_bad_field", "`observed_time` is not epoch milliseconds")
    media = data.get("media")
    if not isinstance(media, dict):
        raise PayloadError("detection_missing_field", "detection data lacks a `media` object")
    sha256 = _text(media, "sha256").lower()
    if len(sha256) != SHA256_HEX_DIGITS or any(c not in "0123456789abcdef" for c in sha256):
        raise PayloadError("detection_bad_field", "media `sha256` is not 64 hex digits")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise PayloadError("detection_bad_field", "`attributes` is not an object of strings")
    return sn, inspection_pb2.Detection(
        id=f"dji-{sn}-{envelope.bid}",
        scenario=_text(data, "scenario_code"),
        confidence=confidence,
        lon=lon,
        lat=lat,
        observed_time_ms=observed,
        media=inspection_pb2.MediaRef(uri=_text(media, "url"), sha256=sha256),
        attributes={str(k): v for k, v in attributes.items()},
    )


# -- commands to services requests ------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCall:
    method: str
    data: dict[str, Any]


def waypoints_of(command: command_pb2.DroneCommand) -> list[tuple[float, float]]:
    """The path then the target, as (lon, lat)."""
    path = list(zip(command.path_lon, command.path_lat, strict=False))
    return [*path, (command.target_lon, command.target_lat)]


def _point(lon: float, lat: float, height: float) -> dict[str, float]:
    return {"latitude": lat, "longitude": lon, "height": height}


def service_calls(
    command: command_pb2.DroneCommand, *, cruise_alt_m: float
) -> list[ServiceCall] | None:
    """The services requests that carry out a command, in order; each after the aircraft
    reached the previous one's end point. None for a kind the Cloud API cannot express.

    LAUNCH is `takeoff_to_point` to the first waypoint, then `fly_to_point` along the rest;
    GOTO is `fly_to_point`; HOLD is `fly_to_point_stop` (the aircraft hovers); RETURN is
    `return_home`. The hold on scene and the return after it are the gateway's to time.
    """
    height = command.target_alt_m or cruise_alt_m
    kind = command.kind
    if kind == command_pb2.COMMAND_KIND_LAUNCH and not command.mission_id and command.nest_id:
        return None  # a relocation: a dock's aircraft lands only at its own dock
    if kind == command_pb2.COMMAND_KIND_LAUNCH:
        points = waypoints_of(command)
        first_lon, first_lat = points[0]
        calls = [
            ServiceCall(
                "takeoff_to_point",
                {
                    "flight_id": command.command_id,
                    "target_latitude": first_lat,
                    "target_longitude": first_lon,
                    "target_height": height,
                    "security_takeoff_height": min(height, 30.0),
                    "rth_altitude": height,
                    "commander_flight_height": height,
                    "max_speed": 15,
                },
            )
        ]
        if len(points) > 1:
            calls.append(_fly_to(command.command_id, points[1:], height))
        return calls
    if kind == command_pb2.COMMAND_KIND_GOTO:
        return [_fly_to(command.command_id, waypoints_of(command), height)]
    if kind == command_pb2.COMMAND_KIND_HOLD:
        return [ServiceCall("fly_to_point_stop", {})]
    if kind == command_pb2.COMMAND_KIND_RETURN:
        return [ServiceCall("return_home", {})]
    return None


def _fly_to(fly_to_id: str, points: list[tuple[float, float]], height: float) -> ServiceCall:
    return ServiceCall(
        "fly_to_point",
        {
            "fly_to_id": fly_to_id,
            "max_speed": 15,
            "points": [_point(lon, lat, height) for lon, lat in points],
        },
    )


def end_point(call: ServiceCall) -> tuple[float, float]:
    """(lon, lat) where a take-off or fly-to request ends."""
    if "points" in call.data:
        last = call.data["points"][-1]
        return float(last["longitude"]), float(last["latitude"])
    return float(call.data["target_longitude"]), float(call.data["target_latitude"])


def request_payload(call: ServiceCall, *, tid: str, bid: str, now_ms: int) -> bytes:
    return orjson.dumps(
        {"tid": tid, "bid": bid, "timestamp": now_ms, "method": call.method, "data": call.data}
    )


def reply_result(envelope: Envelope) -> int:
    """The `result` of a services_reply (0 is success)."""
    result = envelope.data.get("result")
    if isinstance(result, bool) or not isinstance(result, int):
        raise PayloadError("missing_field", "services_reply data lacks an integer `result`")
    return result
