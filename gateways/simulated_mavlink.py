"""A simulated PX4-style drone speaking MAVLink 2 over UDP, flown by the twin's physics.

It sends HEARTBEAT (1 Hz), GLOBAL_POSITION_INT (5 Hz airborne, 1 Hz docked), SYS_STATUS,
BATTERY_STATUS and Remote ID OPEN_DRONE_ID_LOCATION (1 Hz); while airborne, at
`detections_per_minute` of flight (seeded), an image capture (CAMERA_IMAGE_CAPTURED) and its
detection note (a TUNNEL of payload type 0xA1D0, laid out as docs/gateways.md says). It
answers the mission protocol and COMMAND_LONG as an autopilot does. `time_scale` runs the
physics faster than the wall clock (for tests); the speeds it reports stay the physical ones.

It is meant to check the gateway's codec, so it shares none of it: its flight modes and its
reading of a mission come from PX4's documents (below), pymavlink only frames the messages.
A disarmed vehicle refuses RTL, as PX4 does on the ground.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from pymavlink.dialects.v20 import common as mavlink

from airgrid.geo import haversine_m
from airgrid.reference import DroneSpec, NestSpec
from airgrid.sim.physics import SimDrone, apply_command
from airgrid.v1 import command_pb2, telemetry_pb2
from gateways.simulated_flight import flight_ticks
from gateways.simulated_sightings import Sighting, SightingSource, catalogue_codes

log = logging.getLogger("airgrid.sim.mavlink")

# PX4's custom mode (src/modules/commander/px4_custom_mode.h): a union of a 16-bit reserved
# field, the main mode byte and the sub mode byte, so main mode in bits 16-23 and sub mode in
# bits 24-31 of HEARTBEAT.custom_mode. Main mode 4 is AUTO; its sub modes READY 1, TAKEOFF 2,
# LOITER 3, MISSION 4, RTL 5, LAND 6.
_MAIN_MODE_AUTO = 4
_AUTO_SUB_MODE: dict[int, int] = {
    telemetry_pb2.FLIGHT_MODE_TAKING_OFF: 2,
    telemetry_pb2.FLIGHT_MODE_HOVERING: 3,
    telemetry_pb2.FLIGHT_MODE_CRUISING: 4,
    telemetry_pb2.FLIGHT_MODE_RETURNING: 5,
    telemetry_pb2.FLIGHT_MODE_LANDING: 6,
}
_AUTO_LOITER = 3
_AT_NEST_M = 50.0  # a NAV_LAND this close to a nest lands in it
# The detection note: a private TUNNEL payload type (32768 and above are not registered).
_DETECTION_TUNNEL = 0xA1D0


class _Item(NamedTuple):
    """A mission item as uploaded (MISSION_ITEM_INT: x = lat·1e7, y = lon·1e7)."""

    command: int
    lat: float
    lon: float
    alt_m: float
    param1: float


def _custom_mode(flight_mode: int) -> int:
    return (_MAIN_MODE_AUTO << 16) | (_AUTO_SUB_MODE.get(flight_mode, 1) << 24)


class SimulatedMavlinkDrone(asyncio.DatagramProtocol):
    def __init__(
        self,
        spec: DroneSpec,
        nest: NestSpec,
        *,
        system_id: int,
        gateway: tuple[str, int],
        time_scale: float = 1.0,
        battery_pct: float = 100.0,
        nests: Mapping[str, tuple[float, float]] | None = None,
        detections_per_minute: float = 0.0,
        seed: int = 0,
    ) -> None:
        """nests: (lon, lat) of the nests a mission may end landing in (a move between
        nests); the vehicle's own nest is always one."""
        self.drone = SimDrone.docked_at(spec, nest.id, nest.lon, nest.lat, battery_pct=battery_pct)
        self.nests = {**(nests or {}), nest.id: (nest.lon, nest.lat)}
        self.system_id = system_id
        self.gateway = gateway
        self.time_scale = time_scale
        self.mav = mavlink.MAVLink(None, srcSystem=system_id, srcComponent=1)
        self.parser = mavlink.MAVLink(None, srcSystem=system_id, srcComponent=1)
        self.parser.robust_parsing = True
        self.transport: asyncio.DatagramTransport | None = None
        self.mission: list[_Item | None] = []
        self.received: list[str] = []  # the MAVLink message types the gateway sent, in order
        self.commands: list[int] = []  # the MAV_CMD of each COMMAND_LONG, in order
        self.silent = False  # True: stop sending anything (a link loss)
        self._boot = asyncio.get_running_loop().time()
        self.sightings = SightingSource(
            per_minute=detections_per_minute, seed=seed, scenarios=catalogue_codes()
        )
        self.detections_sent = 0

    # -- wire ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, message: Any) -> None:
        if self.transport is not None and not self.silent:
            self.transport.sendto(message.pack(self.mav), self.gateway)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for message in self.parser.parse_buffer(data) or []:
            kind = message.get_type()
            if kind == "BAD_DATA":
                continue
            self.received.append(kind)
            with contextlib.suppress(Exception):
                self._obey(kind, message)

    # -- autopilot ----------------------------------------------------------------------------

    def _obey(self, kind: str, message: Any) -> None:
        if kind == "MISSION_COUNT":
            self.mission = [None] * message.count
            self._request(0)
        elif kind == "MISSION_ITEM_INT":
            if 0 <= message.seq < len(self.mission):
                self.mission[message.seq] = _Item(
                    message.command, message.x / 1e7, message.y / 1e7, message.z, message.param1
                )
                missing = [i for i, item in enumerate(self.mission) if item is None]
                if missing:
                    self._request(missing[0])
                else:
                    self.send(self.mav.mission_ack_encode(255, 190, mavlink.MAV_MISSION_ACCEPTED))
        elif kind == "COMMAND_LONG":
            self.commands.append(message.command)
            accepted = self._command(message)
            result = mavlink.MAV_RESULT_ACCEPTED if accepted else mavlink.MAV_RESULT_DENIED
            self.send(self.mav.command_ack_encode(message.command, result))

    def _request(self, seq: int) -> None:
        self.send(
            self.mav.mission_request_int_encode(255, 190, seq, mavlink.MAV_MISSION_TYPE_MISSION)
        )

    def _command(self, message: Any) -> bool:
        if message.command == mavlink.MAV_CMD_MISSION_START:
            items = [i for i in self.mission if i is not None]
            if not items or len(items) != len(self.mission):
                return False
            command = self._flight_of(items)
            return command is not None and apply_command(self.drone, command, nests=self.nests)
        if (
            message.command == mavlink.MAV_CMD_DO_SET_MODE
            and int(message.param2) == _MAIN_MODE_AUTO
            and int(message.param3) == _AUTO_LOITER
        ):
            hold = command_pb2.DroneCommand(kind=command_pb2.COMMAND_KIND_HOLD)
            return apply_command(self.drone, hold)
        if message.command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH:
            if not self.drone.airborne:
                return False  # landed and disarmed: nothing to return from
            back = command_pb2.DroneCommand(
                kind=command_pb2.COMMAND_KIND_RETURN, nest_id=self.drone.home_nest_id
            )
            return apply_command(self.drone, back)
        return False

    def _flight_of(self, items: list[_Item]) -> command_pb2.DroneCommand | None:
        """What the autopilot flies for a mission: take off when on the ground, the
        waypoints, then loiter a time and return, loiter until told otherwise, or land (at
        a nest); None for a mission it will not fly."""
        c = mavlink
        takeoff = [i for i in items if i.command == c.MAV_CMD_NAV_TAKEOFF]
        if not self.drone.airborne and not takeoff:
            return None  # on the ground, a mission must begin with a take-off
        waypoints = [i for i in items if i.command == c.MAV_CMD_NAV_WAYPOINT]
        if not waypoints:
            return None
        target = waypoints[-1]
        command = command_pb2.DroneCommand(
            kind=command_pb2.COMMAND_KIND_GOTO
            if self.drone.airborne
            else command_pb2.COMMAND_KIND_LAUNCH,
            target_lon=target.lon,
            target_lat=target.lat,
            target_alt_m=target.alt_m,
            path_lon=[w.lon for w in waypoints[:-1]],
            path_lat=[w.lat for w in waypoints[:-1]],
        )
        last = items[-1]
        if last.command == c.MAV_CMD_NAV_LAND:
            nest_id = next(
                (
                    n for n, (lon, lat) in sorted(self.nests.items())
                    if haversine_m(lon, lat, last.lon, last.lat) <= _AT_NEST_M
                ),
                None,
            )  # fmt: skip
            if nest_id is None or self.drone.airborne:
                return None  # this vehicle lands only in a nest, and moves only from one
            command.kind = command_pb2.COMMAND_KIND_LAUNCH
            command.nest_id = nest_id
            return command
        loiter = [i for i in items if i.command == c.MAV_CMD_NAV_LOITER_TIME]
        if loiter:
            command.hold_seconds = int(loiter[0].param1)
        return command

    # -- reports ------------------------------------------------------------------------------

    def _heartbeat(self) -> None:
        d = self.drone
        armed = d.mode != telemetry_pb2.FLIGHT_MODE_DOCKED
        base = mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
        base |= mavlink.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0
        custom = _custom_mode(d.mode) if armed else 0
        state = mavlink.MAV_STATE_ACTIVE if armed else mavlink.MAV_STATE_STANDBY
        self.send(
            self.mav.heartbeat_encode(
                mavlink.MAV_TYPE_QUADROTOR, mavlink.MAV_AUTOPILOT_PX4, base, custom, state
            )
        )

    def _position(self, now: float) -> None:
        d = self.drone
        heading = math.radians(d.heading_deg)
        vx = d.ground_speed_mps * math.cos(heading) * 100
        vy = d.ground_speed_mps * math.sin(heading) * 100
        self.send(
            self.mav.global_position_int_encode(
                int((now - self._boot) * 1000) & 0xFFFFFFFF,
                round(d.lat * 1e7),
                round(d.lon * 1e7),
                round((d.alt_m + 20.0) * 1000),
                round(d.alt_m * 1000),
                round(vx),
                round(vy),
                round(-d.vertical_speed_mps * 100),
                round(d.heading_deg * 100) % 36000,
            )
        )

    def _status(self) -> None:
        d = self.drone
        battery = round(max(0.0, min(100.0, d.battery_pct)))
        sensors = (
            mavlink.MAV_SYS_STATUS_SENSOR_GPS
            | mavlink.MAV_SYS_STATUS_SENSOR_3D_GYRO
            | mavlink.MAV_SYS_STATUS_SENSOR_BATTERY
        )
        self.send(
            self.mav.sys_status_encode(
                sensors, sensors, sensors, 300, 15800, 900, battery, 0, 0, 0, 0, 0, 0
            )
        )
        self.send(
            self.mav.battery_status_encode(
                0,
                mavlink.MAV_BATTERY_FUNCTION_ALL,
                mavlink.MAV_BATTERY_TYPE_LIPO,
                2500,
                [3950] * 4 + [65535] * 6,
                900,
                -1,
                -1,
                battery,
            )
        )
        heading = round(d.heading_deg * 100) % 36000
        self.send(
            self.mav.open_drone_id_location_encode(
                0,
                0,
                [0] * 20,
                mavlink.MAV_ODID_STATUS_AIRBORNE if d.airborne else mavlink.MAV_ODID_STATUS_GROUND,
                heading,
                min(25425, round(d.ground_speed_mps * 100)),
                round(d.vertical_speed_mps * 100),
                round(d.lat * 1e7),
                round(d.lon * 1e7),
                d.alt_m + 20.0,
                d.alt_m + 20.0,
                mavlink.MAV_ODID_HEIGHT_REF_OVER_TAKEOFF,
                d.alt_m,
                0,
                0,
                0,
                0,
                0.0,
                0,
            )
        )

    def detection(self, sighting: Sighting, now: float, time_utc_us: int) -> None:
        """The image capture, then the note of what the detector saw in it."""
        d = self.drone
        url = f"mavlink://sim/{self.system_id}/{sighting.media_name}".encode()
        self.send(
            self.mav.camera_image_captured_encode(
                int((now - self._boot) * 1000) & 0xFFFFFFFF,
                time_utc_us,
                0,
                round(d.lat * 1e7),
                round(d.lon * 1e7),
                round((d.alt_m + 20.0) * 1000),
                round(d.alt_m * 1000),
                [1.0, 0.0, 0.0, 0.0],
                sighting.image_index,
                1,
                url,
            )
        )
        scenario = sighting.scenario.encode("ascii")
        attributes = "\n".join(f"{k}={v}" for k, v in sighting.attributes.items()).encode()
        payload = (
            struct.pack(
                "<BiH32sB",
                1,
                sighting.image_index,
                round(sighting.confidence * 10_000),
                bytes.fromhex(sighting.media_sha256),
                len(scenario),
            )
            + scenario
            + attributes
        )[:128]
        self.send(
            self.mav.tunnel_encode(
                0, 0, _DETECTION_TUNNEL, len(payload), list(payload.ljust(128, b"\0"))
            )
        )
        self.detections_sent += 1

    async def run(self, stop: asyncio.Event) -> None:
        """Fly and report until `stop`."""
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        next_heartbeat = next_status = next_position = last = loop.time()
        try:
            async for now, changed in flight_ticks(self.drone, stop, self.time_scale):
                flown_s, last = (now - last) * self.time_scale, now
                sighting = self.sightings.next(flown_s) if self.drone.airborne else None
                if sighting is not None:
                    self.detection(sighting, now, time.time_ns() // 1000)
                if now >= next_heartbeat or changed:
                    self._heartbeat()
                    next_heartbeat = now + 1.0
                if now >= next_position or changed:
                    self._position(now)
                    next_position = now + (0.2 if self.drone.airborne else 1.0)
                if now >= next_status:
                    self._status()
                    next_status = now + 1.0
        finally:
            self.transport.close()
