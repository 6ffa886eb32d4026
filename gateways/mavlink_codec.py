"""MAVLink 2 ↔ air grid, pure: what a drone's messages say about it, and which MAVLink a
command becomes. No sockets and no clock here (time is an input), so it is unit-testable.

Flight modes follow PX4's custom mode (main mode in bits 16-23, sub mode in bits 24-31);
a disarmed vehicle is docked.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from airgrid.v1 import command_pb2, inspection_pb2, telemetry_pb2
from airgrid.v1.telemetry_pb2 import FlightMode

PX4_MAIN_AUTO = 4
PX4_AUTO_TAKEOFF = 2
PX4_AUTO_LOITER = 3
PX4_AUTO_MISSION = 4
PX4_AUTO_RTL = 5
PX4_AUTO_LAND = 6

_SUB_MODE_TO_FLIGHT = {
    PX4_AUTO_TAKEOFF: FlightMode.FLIGHT_MODE_TAKING_OFF,
    PX4_AUTO_LOITER: FlightMode.FLIGHT_MODE_HOVERING,
    PX4_AUTO_MISSION: FlightMode.FLIGHT_MODE_CRUISING,
    PX4_AUTO_RTL: FlightMode.FLIGHT_MODE_RETURNING,
    PX4_AUTO_LAND: FlightMode.FLIGHT_MODE_LANDING,
}
FLIGHT_TO_SUB_MODE: dict[int, int] = {flight: sub for sub, flight in _SUB_MODE_TO_FLIGHT.items()}

# The messages that describe the drone; everything else is counted and ignored.
TELEMETRY_MESSAGES = frozenset(
    {"HEARTBEAT", "GLOBAL_POSITION_INT", "SYS_STATUS", "BATTERY_STATUS", "OPEN_DRONE_ID_LOCATION"}
)
# SYS_STATUS sensor bits whose failure is a fault worth a re-dispatch.
_FAULT_SENSORS = {
    mavlink.MAV_SYS_STATUS_SENSOR_GPS: "gps",
    mavlink.MAV_SYS_STATUS_SENSOR_3D_GYRO: "gyro",
    mavlink.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS: "motors",
    mavlink.MAV_SYS_STATUS_SENSOR_BATTERY: "battery",
}


def px4_custom_mode(sub_mode: int) -> int:
    return (PX4_MAIN_AUTO << 16) | (sub_mode << 24)


def flight_mode_of(base_mode: int, custom_mode: int) -> int:
    """The air grid's flight mode from a HEARTBEAT's base and custom mode."""
    if not base_mode & mavlink.MAV_MODE_FLAG_SAFETY_ARMED:
        return FlightMode.FLIGHT_MODE_DOCKED
    main_mode = (custom_mode >> 16) & 0xFF
    sub_mode = (custom_mode >> 24) & 0xFF
    if main_mode != PX4_MAIN_AUTO:
        # Position, altitude or manual modes: flying, under a pilot's hand.
        return FlightMode.FLIGHT_MODE_HOVERING
    return _SUB_MODE_TO_FLIGHT.get(sub_mode, FlightMode.FLIGHT_MODE_CRUISING)


@dataclass
class DroneReport:
    """What the gateway last heard from one vehicle, folded from its messages."""

    lon: float | None = None
    lat: float | None = None
    alt_m: float = 0.0
    ground_speed_mps: float = 0.0
    vertical_speed_mps: float = 0.0
    heading_deg: float = 0.0
    battery_pct: float | None = None
    flight_mode: int = FlightMode.FLIGHT_MODE_UNSPECIFIED
    faults: list[str] = field(default_factory=list)
    has_position_int: bool = False


def fold(report: DroneReport, message: Any) -> bool:
    """Update the report from one decoded message; True when it is a position fix worth a
    telemetry record (GLOBAL_POSITION_INT, or Remote ID when the autopilot sends no fix)."""
    kind = message.get_type()
    if kind == "HEARTBEAT":
        report.flight_mode = flight_mode_of(message.base_mode, message.custom_mode)
        return False
    if kind == "GLOBAL_POSITION_INT":
        report.has_position_int = True
        report.lat = message.lat / 1e7
        report.lon = message.lon / 1e7
        report.alt_m = message.relative_alt / 1000.0
        report.ground_speed_mps = math.hypot(message.vx, message.vy) / 100.0
        report.vertical_speed_mps = -message.vz / 100.0  # NED: positive z is down
        if message.hdg != 65535:
            report.heading_deg = (message.hdg / 100.0) % 360.0
        return True
    if kind == "SYS_STATUS":
        if message.battery_remaining >= 0:
            report.battery_pct = float(message.battery_remaining)
        enabled = message.onboard_control_sensors_enabled
        unhealthy = enabled & ~message.onboard_control_sensors_health
        report.faults = [name for bit, name in _FAULT_SENSORS.items() if unhealthy & bit]
        return False
    if kind == "BATTERY_STATUS":
        if message.battery_remaining >= 0:
            report.battery_pct = float(message.battery_remaining)
        return False
    if kind == "OPEN_DRONE_ID_LOCATION":
        if report.has_position_int:
            return False
        report.lat = message.latitude / 1e7
        report.lon = message.longitude / 1e7
        report.alt_m = float(message.height)
        if message.speed_horizontal != 255:
            report.ground_speed_mps = message.speed_horizontal / 100.0
        if message.direction <= 36000:
            report.heading_deg = (message.direction / 100.0) % 360.0
        return True
    return False


def telemetry_of(
    report: DroneReport,
    *,
    drone_id: str,
    seq: int,
    now_ms: int,
    nest_id: str,
    mission_id: str,
) -> telemetry_pb2.Telemetry | None:
    """The air grid record for a report; None until position and battery are both known."""
    if report.lon is None or report.lat is None or report.battery_pct is None:
        return None
    return telemetry_pb2.Telemetry(
        drone_id=drone_id,
        seq=seq,
        event_time_ms=now_ms,
        lon=report.lon,
        lat=report.lat,
        alt_m=report.alt_m,
        ground_speed_mps=report.ground_speed_mps,
        vertical_speed_mps=report.vertical_speed_mps,
        heading_deg=report.heading_deg,
        battery_pct=report.battery_pct,
        flight_mode=report.flight_mode,  # type: ignore[arg-type]
        nest_id=nest_id,
        mission_id=mission_id,
        faults=report.faults,
    )


# -- commands to MAVLink --------------------------------------------------------------------


@dataclass(frozen=True)
class MissionItem:
    """One MISSION_ITEM_INT: a MAV_CMD at a position (lat/lon in degrees, alt in metres)."""

    command: int
    lat: float = 0.0
    lon: float = 0.0
    alt_m: float = 0.0
    param1: float = 0.0


@dataclass(frozen=True)
class CommandLong:
    command: int
    params: tuple[float, float, float, float, float, float, float] = (0, 0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class MavlinkPlan:
    """What one air-grid command becomes: a mission to upload (then MISSION_START), or one
    COMMAND_LONG."""

    mission: tuple[MissionItem, ...] = ()
    command: CommandLong | None = None


def plan_of(command: command_pb2.DroneCommand, *, cruise_alt_m: float) -> MavlinkPlan | None:
    """The MAVLink for a command; None for a kind MAVLink cannot express."""
    kind = command.kind
    if kind in (command_pb2.COMMAND_KIND_LAUNCH, command_pb2.COMMAND_KIND_GOTO):
        alt = command.target_alt_m or cruise_alt_m
        items: list[MissionItem] = []
        if kind == command_pb2.COMMAND_KIND_LAUNCH:
            items.append(MissionItem(mavlink.MAV_CMD_NAV_TAKEOFF, alt_m=alt))
        for lon, lat in zip(command.path_lon, command.path_lat, strict=False):
            items.append(MissionItem(mavlink.MAV_CMD_NAV_WAYPOINT, lat, lon, alt))
        target = (command.target_lat, command.target_lon)
        items.append(MissionItem(mavlink.MAV_CMD_NAV_WAYPOINT, *target, alt))
        if not command.mission_id and command.nest_id:
            # A relocation to the nest at the target: land there (it becomes the vehicle's
            # launch point, so a later RTL brings it back to that nest).
            items.append(MissionItem(mavlink.MAV_CMD_NAV_LAND, *target, 0.0))
        elif command.hold_seconds > 0:
            loiter = float(command.hold_seconds)
            items.append(MissionItem(mavlink.MAV_CMD_NAV_LOITER_TIME, *target, alt, loiter))
            items.append(MissionItem(mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH))
        else:
            items.append(MissionItem(mavlink.MAV_CMD_NAV_LOITER_UNLIM, *target, alt))
        return MavlinkPlan(mission=tuple(items))
    if kind == command_pb2.COMMAND_KIND_HOLD:
        flag = float(mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED)
        params = (flag, float(PX4_MAIN_AUTO), float(PX4_AUTO_LOITER), 0.0, 0.0, 0.0, 0.0)
        return MavlinkPlan(command=CommandLong(mavlink.MAV_CMD_DO_SET_MODE, params))
    if kind == command_pb2.COMMAND_KIND_RETURN:
        return MavlinkPlan(command=CommandLong(mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH))
    return None


def mission_item_message(
    item: MissionItem, seq: int, *, target_system: int, target_component: int
) -> Any:
    return mavlink.MAVLink_mission_item_int_message(
        target_system,
        target_component,
        seq,
        mavlink.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT,
        item.command,
        1 if seq == 0 else 0,
        1,
        item.param1,
        0.0,
        0.0,
        math.nan,
        round(item.lat * 1e7),
        round(item.lon * 1e7),
        item.alt_m,
        mavlink.MAV_MISSION_TYPE_MISSION,
    )


def flight_command_of(items: list[MissionItem], *, airborne: bool) -> command_pb2.DroneCommand:
    """The simulated autopilot's reading of an uploaded mission, as the twin's command."""
    waypoints = [i for i in items if i.command == mavlink.MAV_CMD_NAV_WAYPOINT]
    loiter = [
        i
        for i in items
        if i.command in (mavlink.MAV_CMD_NAV_LOITER_TIME, mavlink.MAV_CMD_NAV_LOITER_UNLIM)
    ]
    target = waypoints[-1] if waypoints else (loiter[0] if loiter else None)
    takeoff = [i for i in items if i.command == mavlink.MAV_CMD_NAV_TAKEOFF]
    kind = command_pb2.COMMAND_KIND_GOTO if airborne else command_pb2.COMMAND_KIND_LAUNCH
    hold = next((i.param1 for i in loiter if i.command == mavlink.MAV_CMD_NAV_LOITER_TIME), 0.0)
    alt = target.alt_m if target is not None else (takeoff[0].alt_m if takeoff else 0.0)
    return command_pb2.DroneCommand(
        kind=kind,
        target_lon=target.lon if target is not None else 0.0,
        target_lat=target.lat if target is not None else 0.0,
        target_alt_m=alt,
        hold_seconds=int(hold),
        path_lon=[w.lon for w in waypoints[:-1]],
        path_lat=[w.lat for w in waypoints[:-1]],
    )


# -- detections ---------------------------------------------------------------------------------

# TUNNEL payload_type of a detection note: 32768 and above are for private use (common.xml,
# MAV_TUNNEL_PAYLOAD_TYPE), so no registered payload is mistaken for one.
DETECTION_TUNNEL_TYPE = 0xA1D0
DETECTION_NOTE_VERSION = 1
# version (u8), image_index (i32), confidence in 1/10000 (u16), SHA-256 (32 bytes), scenario
# length (u8); then the scenario (ASCII) and optional attributes (UTF-8 `key=value` lines).
_NOTE_HEAD = struct.Struct("<BiH32sB")
CONFIDENCE_SCALE = 10_000
# Captures and notes waiting for their other half, per vehicle.
PENDING_HALVES = 32


class DetectionDecodeError(ValueError):
    """A detection message the gateway cannot use; `reason` is the metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Capture:
    """A CAMERA_IMAGE_CAPTURED: where and when one image was taken, and where it is kept."""

    image_index: int
    lon: float
    lat: float
    observed_time_ms: int
    file_url: str


@dataclass(frozen=True)
class DetectionNote:
    """A detection TUNNEL: what the onboard detector saw in the image of `image_index`."""

    image_index: int
    scenario: str
    confidence: float
    sha256: str
    attributes: dict[str, str]


def capture_of(message: Any) -> Capture | None:
    """The capture a CAMERA_IMAGE_CAPTURED reports; None for a failed capture (no image)."""
    if message.capture_result != 1:
        return None
    lat, lon = message.lat / 1e7, message.lon / 1e7
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0 and lon == 0):
        raise DetectionDecodeError("detection_bad_position", f"({lon}, {lat}) is not a position")
    if message.time_utc <= 0:
        raise DetectionDecodeError("detection_no_utc_time", "capture without time_utc")
    url = message.file_url
    if isinstance(url, bytes | bytearray):
        url = bytes(url).split(b"\0", 1)[0].decode("utf-8", errors="replace")
    if not url:
        raise DetectionDecodeError("detection_no_file_url", "capture without file_url")
    return Capture(message.image_index, lon, lat, message.time_utc // 1000, str(url))


def note_of(message: Any) -> DetectionNote | None:
    """The detection note a TUNNEL carries; None for a tunnel of another payload type."""
    if message.payload_type != DETECTION_TUNNEL_TYPE:
        return None
    payload = bytes(message.payload[: message.payload_length])
    if len(payload) < _NOTE_HEAD.size:
        raise DetectionDecodeError("detection_short_note", f"{len(payload)} bytes")
    version, index, confidence, digest, length = _NOTE_HEAD.unpack_from(payload)
    if version != DETECTION_NOTE_VERSION:
        raise DetectionDecodeError("detection_note_version", f"version {version}")
    if confidence > CONFIDENCE_SCALE:
        raise DetectionDecodeError("detection_bad_confidence", f"{confidence} / 10000")
    end = _NOTE_HEAD.size + length
    scenario = payload[_NOTE_HEAD.size : end]
    if length == 0 or len(scenario) != length or not scenario.isascii():
        raise DetectionDecodeError("detection_bad_scenario", "scenario missing or not ASCII")
    try:
        lines = payload[end:].decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DetectionDecodeError("detection_bad_attributes", str(error)) from error
    attributes = dict(line.partition("=")[::2] for line in lines if "=" in line)
    return DetectionNote(
        image_index=index,
        scenario=scenario.decode("ascii"),
        confidence=confidence / CONFIDENCE_SCALE,
        sha256=digest.hex(),
        attributes=attributes,
    )


class DetectionPairing:
    """Pairs each note with the capture of the same image_index, in either order. Bounded:
    past PENDING_HALVES the oldest waiting half is dropped and counted in `unpaired_notes`
    (a capture without a note is an ordinary photo, not a loss)."""

    def __init__(self, bound: int = PENDING_HALVES) -> None:
        self.bound = bound
        self.captures: dict[int, Capture] = {}
        self.notes: dict[int, DetectionNote] = {}
        self.unpaired_notes = 0

    def add_capture(self, capture: Capture) -> tuple[Capture, DetectionNote] | None:
        note = self.notes.pop(capture.image_index, None)
        if note is not None:
            return capture, note
        self.captures[capture.image_index] = capture
        while len(self.captures) > self.bound:
            del self.captures[next(iter(self.captures))]
        return None

    def add_note(self, note: DetectionNote) -> tuple[Capture, DetectionNote] | None:
        capture = self.captures.pop(note.image_index, None)
        if capture is not None:
            return capture, note
        self.notes[note.image_index] = note
        while len(self.notes) > self.bound:
            del self.notes[next(iter(self.notes))]
            self.unpaired_notes += 1
        return None


def detection_of(
    capture: Capture, note: DetectionNote, *, drone_id: str, mission_id: str
) -> inspection_pb2.Detection:
    """The detection of a paired capture and note; its id is stable for the image, so a
    vehicle that resends both halves repeats the same detection."""
    return inspection_pb2.Detection(
        id=f"mav-{drone_id}-{capture.observed_time_ms}-{capture.image_index}",
        drone_id=drone_id,
        mission_id=mission_id,
        scenario=note.scenario,
        confidence=note.confidence,
        lon=capture.lon,
        lat=capture.lat,
        observed_time_ms=capture.observed_time_ms,
        media=inspection_pb2.MediaRef(uri=capture.file_url, sha256=note.sha256),
        attributes=note.attributes,
    )
