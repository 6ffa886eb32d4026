"""`airgrid gateway mavlink`: MAVLink 2 drones over UDP into the air grid, commands back out.

Each datagram is parsed with pymavlink (one parser per sender address, so a torn or corrupt
frame only costs that sender a resync). A vehicle is admitted once its system id maps to a
drone the registry shows this gateway; until then its messages are counted and dropped. A
vehicle whose heartbeats stop for 5 intervals is lost. Commands from airgrid.drone.commands
become an uploaded mission + MISSION_START (launch, goto) or a COMMAND_LONG (hold, return),
retried until acknowledged, and the outcome goes out as a mission event. A detection is a
CAMERA_IMAGE_CAPTURED paired with a detection TUNNEL of the same image index (see
mavlink_codec), forwarded as a detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from airgrid.bus import now_ms
from airgrid.v1 import command_pb2, inspection_pb2, telemetry_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.command_outcome import Outcome, report_command
from gateways.mavlink_codec import (
    TELEMETRY_MESSAGES,
    CommandLong,
    DetectionDecodeError,
    DetectionPairing,
    DroneReport,
    MissionItem,
    capture_of,
    detection_of,
    fold,
    mission_item_message,
    note_of,
    plan_of,
    telemetry_of,
)
from gateways.metrics import (
    DECODE_ERRORS,
    DEVICES_LINKED,
    MESSAGES_IN,
    MESSAGES_OUT,
)

log = logging.getLogger("airgrid.gateway.mavlink")

GATEWAY = "mavlink"
GCS_SYSTEM_ID = 255
GCS_COMPONENT_ID = mavlink.MAV_COMP_ID_MISSIONPLANNER
MISSED_HEARTBEATS = 5
ACK_TIMEOUT_S = 1.0
RETRIES = 5
LINK_LOST_FAULT = "mavlink_link_lost"

Submit = Callable[[telemetry_pb2.Telemetry], None]
SubmitDetection = Callable[[inspection_pb2.Detection], None]
DETECTION_MESSAGES = ("CAMERA_IMAGE_CAPTURED", "TUNNEL")


class CommandFailed(RuntimeError):
    """The vehicle refused a command or never acknowledged it; the message says which."""


@dataclass
class _Upload:
    items: tuple[MissionItem, ...]
    done: asyncio.Future[int]


@dataclass
class Peer:
    """One admitted vehicle."""

    system_id: int
    component_id: int
    drone: RegisteredDrone
    address: tuple[str, int]
    seq: int
    last_heartbeat: float
    report: DroneReport = field(default_factory=DroneReport)
    linked: bool = True
    mission_id: str = ""
    # True once the vehicle left the nest on the current mission (docking then ends it).
    airborne_on_mission: bool = False
    acks: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    upload: _Upload | None = None
    pairing: DetectionPairing = field(default_factory=DetectionPairing)


class MavlinkGateway(asyncio.DatagramProtocol):
    """The UDP endpoint and the per-vehicle state; I/O towards the air grid is injected."""

    def __init__(
        self,
        *,
        systems: Mapping[int, str],
        registered: Callable[[], Mapping[str, RegisteredDrone]],
        submit: Submit,
        submit_detection: SubmitDetection | None = None,
        outcome: Outcome | None = None,
        heartbeat_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.systems = dict(systems)
        self.registered = registered
        self.submit = submit
        self.submit_detection = submit_detection
        self.outcome = outcome
        self.heartbeat_interval_s = heartbeat_interval_s
        self.clock = clock
        self.peers: dict[int, Peer] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self._parsers: dict[tuple[str, int], mavlink.MAVLink] = {}
        self._encoder = mavlink.MAVLink(
            None, srcSystem=GCS_SYSTEM_ID, srcComponent=GCS_COMPONENT_ID
        )
        self._seq_base = now_ms()
        self._errors: dict[str, int] = {}
        self._in = {kind: MESSAGES_IN.labels(GATEWAY, kind) for kind in TELEMETRY_MESSAGES}

    # -- input --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        parser = self._parsers.get(addr)
        if parser is None:
            parser = mavlink.MAVLink(None, srcSystem=GCS_SYSTEM_ID, srcComponent=GCS_COMPONENT_ID)
            parser.robust_parsing = True
            self._parsers[addr] = parser
        try:
            messages = parser.parse_buffer(data) or []
        except Exception as error:  # pymavlink raises on some malformed payloads
            self._reject("undecodable_frame", f"{error!r}", addr=addr)
            messages = []
        if parser.buf_len():
            # A datagram carries whole frames: a torn one must not swallow the next datagram.
            self._reject(
                "truncated_frame", f"{parser.buf_len()} bytes of an unfinished frame", addr=addr
            )
            parser.buf = bytearray()
            parser.buf_index = 0
            parser.expected_length = mavlink.HEADER_LEN_V1 + 2
        for message in messages:
            if message.get_type() == "BAD_DATA":
                reason = str(getattr(message, "reason", ""))
                code = "bad_crc" if "crc" in reason.lower() else "corrupt_frame"
                self._reject(code, reason, addr=addr)
                continue
            try:
                self.handle(message, addr)
            except Exception as error:  # one odd message never takes the endpoint down
                self._reject("unusable_message", repr(error), addr=addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("UDP error", extra={"error": repr(exc)})

    def handle(self, message: Any, addr: tuple[str, int]) -> None:
        system_id = message.get_srcSystem()
        kind = message.get_type()
        peer = self._admit(system_id, message.get_srcComponent(), addr)
        if peer is None:
            return
        counter = self._in.get(kind)
        (counter or MESSAGES_IN.labels(GATEWAY, kind)).inc()
        peer.address = addr
        if kind == "HEARTBEAT":
            peer.last_heartbeat = self.clock()
            if not peer.linked:
                peer.linked = True
                self._count_linked()
                log.info("vehicle link back", extra={"drone_id": peer.drone.id})
        if kind in TELEMETRY_MESSAGES:
            if fold(peer.report, message):
                self._emit(peer)
            return
        if kind in DETECTION_MESSAGES:
            try:
                self._detection_half(peer, kind, message)
            except DetectionDecodeError as error:
                self._reject(error.reason, f"{peer.drone.id}: {error}", addr=addr)
            return
        self._handle_protocol(peer, kind, message)

    def _detection_half(self, peer: Peer, kind: str, message: Any) -> None:
        if kind == "CAMERA_IMAGE_CAPTURED":
            capture = capture_of(message)
            pair = peer.pairing.add_capture(capture) if capture else None
        else:
            note = note_of(message)
            lost = peer.pairing.unpaired_notes
            pair = peer.pairing.add_note(note) if note else None
            if peer.pairing.unpaired_notes > lost:
                raise DetectionDecodeError(
                    "detection_unpaired", "a detection note never met its image capture"
                )
        if pair is None or self.submit_detection is None:
            return
        self.submit_detection(
            detection_of(*pair, drone_id=peer.drone.id, mission_id=peer.mission_id)
        )

    def _admit(self, system_id: int, component_id: int, addr: tuple[str, int]) -> Peer | None:
        drone_id = self.systems.get(system_id)
        if drone_id is None:
            self._reject("unknown_system_id", f"system id {system_id} maps to no drone", addr=addr)
            return None
        drone = self.registered().get(drone_id)
        if drone is None:
            self._reject(
                "unregistered_drone",
                f"system id {system_id} is {drone_id}, which the registry does not show this "
                "gateway; register it (or fix the gateway's nest) to admit it",
                addr=addr,
            )
            return None
        peer = self.peers.get(system_id)
        if peer is None:
            peer = Peer(
                system_id=system_id,
                component_id=component_id,
                drone=drone,
                address=addr,
                seq=self._seq_base,
                last_heartbeat=self.clock(),
            )
            self.peers[system_id] = peer
            self._count_linked()
            log.info(
                "vehicle admitted",
                extra={"drone_id": drone_id, "system_id": system_id, "address": f"{addr}"},
            )
        return peer

    def _emit(self, peer: Peer) -> None:
        if peer.report.flight_mode == telemetry_pb2.FLIGHT_MODE_DOCKED:
            if peer.airborne_on_mission:
                log.info(
                    "vehicle docked; mission flown",
                    extra={"drone_id": peer.drone.id, "mission_id": peer.mission_id},
                )
                peer.mission_id = ""
                peer.airborne_on_mission = False
        elif peer.mission_id:
            peer.airborne_on_mission = True
        record = telemetry_of(
            peer.report,
            drone_id=peer.drone.id,
            seq=peer.seq + 1,
            now_ms=now_ms(),
            nest_id=peer.drone.home_nest,
            mission_id=peer.mission_id,
        )
        if record is None:
            return
        peer.seq += 1
        self.submit(record)

    def _reject(self, reason: str, detail: str, *, addr: tuple[str, int]) -> None:
        DECODE_ERRORS.labels(GATEWAY, reason).inc()
        count = self._errors[reason] = self._errors.get(reason, 0) + 1
        # Every reason is logged, then sparingly: a flood of junk must not flood the logs.
        if count <= 5 or count % 1000 == 0:
            log.warning(
                "MAVLink input dropped",
                extra={
                    "reason": reason,
                    "detail": detail[:200],
                    "address": f"{addr}",
                    "count": count,
                },
            )

    # -- link state ---------------------------------------------------------------------------

    def check_links(self) -> None:
        """Mark vehicles lost after MISSED_HEARTBEATS silent intervals, and tell the air grid."""
        limit = MISSED_HEARTBEATS * self.heartbeat_interval_s
        now = self.clock()
        for peer in self.peers.values():
            if peer.linked and now - peer.last_heartbeat > limit:
                peer.linked = False
                self._count_linked()
                log.warning(
                    "vehicle lost: heartbeats missed",
                    extra={"drone_id": peer.drone.id, "missed": MISSED_HEARTBEATS},
                )
                if LINK_LOST_FAULT not in peer.report.faults:
                    peer.report.faults = [*peer.report.faults, LINK_LOST_FAULT]
                self._emit(peer)
                peer.report.faults = [f for f in peer.report.faults if f != LINK_LOST_FAULT]
                for future in [*peer.acks.values()]:
                    if not future.done():
                        future.set_exception(CommandFailed("the vehicle's link was lost"))

    def _count_linked(self) -> None:
        DEVICES_LINKED.labels(GATEWAY).set(sum(1 for p in self.peers.values() if p.linked))

    async def watch_links(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat_interval_s)
            self.check_links()

    # -- commands -----------------------------------------------------------------------------

    def _handle_protocol(self, peer: Peer, kind: str, message: Any) -> None:
        if kind == "COMMAND_ACK":
            future = peer.acks.get(message.command)
            if future is not None and not future.done():
                future.set_result(message)
        elif kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            upload = peer.upload
            if upload is None or not 0 <= message.seq < len(upload.items):
                return
            self._send(
                peer,
                mission_item_message(
                    upload.items[message.seq],
                    message.seq,
                    target_system=peer.system_id,
                    target_component=peer.component_id,
                ),
            )
        elif kind == "MISSION_ACK":
            upload = peer.upload
            if upload is not None and not upload.done.done():
                upload.done.set_result(message.type)

    def _send(self, peer: Peer, message: Any) -> None:
        if self.transport is None:
            raise CommandFailed("the gateway's UDP endpoint is closed")
        self.transport.sendto(message.pack(self._encoder), peer.address)
        MESSAGES_OUT.labels(GATEWAY, message.get_type()).inc()

    def peer_of(self, drone_id: str) -> Peer | None:
        return next((p for p in self.peers.values() if p.drone.id == drone_id), None)

    def serves(self, drone_id: str) -> bool:
        return drone_id in self.systems.values() and drone_id in self.registered()

    async def deliver(self, command: command_pb2.DroneCommand) -> None:
        """Send one air-grid command, wait for the vehicle's acknowledgement (retrying), and
        report the outcome."""
        kind = command_pb2.CommandKind.Name(command.kind).removeprefix("COMMAND_KIND_").lower()
        context = {"drone_id": command.drone_id, "mission_id": command.mission_id, "command": kind}
        peer = self.peer_of(command.drone_id)
        started = time.perf_counter()
        try:
            if peer is None or not peer.linked:
                raise CommandFailed(f"{command.drone_id} has no MAVLink link to this gateway")
            plan = plan_of(command, cruise_alt_m=peer.drone.cruise_altitude_m)
            if plan is None:
                raise CommandFailed(f"command kind {command.kind} has no MAVLink form")
            flies = bool(plan.mission)
            previous = (peer.mission_id, peer.airborne_on_mission)
            if flies and command.mission_id:
                # Tag telemetry from the first move on, so dispatch sees this mission launch.
                peer.mission_id = command.mission_id
                peer.airborne_on_mission = (
                    peer.report.flight_mode != telemetry_pb2.FLIGHT_MODE_DOCKED
                )
            try:
                if plan.mission:
                    await self._upload(peer, plan.mission)
                    last = float(len(plan.mission) - 1)
                    await self._command(
                        peer, CommandLong(mavlink.MAV_CMD_MISSION_START, (0, last, 0, 0, 0, 0, 0))
                    )
                elif plan.command is not None:
                    await self._command(peer, plan.command)
            except CommandFailed:
                if flies:
                    peer.mission_id, peer.airborne_on_mission = previous
                raise
        except CommandFailed as failure:
            await report_command(
                self.outcome, command, GATEWAY, "MAVLink", context, log, started, failure
            )
            return
        await report_command(self.outcome, command, GATEWAY, "MAVLink", context, log, started)

    async def _command(self, peer: Peer, command: CommandLong) -> None:
        """COMMAND_LONG until COMMAND_ACK ACCEPTED; `confirmation` counts the retries."""
        loop = asyncio.get_running_loop()
        name = mavlink.enums["MAV_CMD"][command.command].name
        try:
            for attempt in range(RETRIES):
                future: asyncio.Future[Any] = loop.create_future()
                peer.acks[command.command] = future
                self._send(
                    peer,
                    mavlink.MAVLink_command_long_message(
                        peer.system_id, peer.component_id, command.command, attempt, *command.params
                    ),
                )
                try:
                    ack = await asyncio.wait_for(future, ACK_TIMEOUT_S)
                except TimeoutError:
                    continue
                if ack.result == mavlink.MAV_RESULT_ACCEPTED:
                    return
                if ack.result in (
                    mavlink.MAV_RESULT_TEMPORARILY_REJECTED,
                    mavlink.MAV_RESULT_IN_PROGRESS,
                ):
                    await asyncio.sleep(ACK_TIMEOUT_S / 2)
                    continue
                result = mavlink.enums["MAV_RESULT"][ack.result].name
                raise CommandFailed(f"{name} refused by the vehicle ({result})")
        finally:
            peer.acks.pop(command.command, None)
        raise CommandFailed(f"no COMMAND_ACK for {name} after {RETRIES} tries")

    async def _upload(self, peer: Peer, items: tuple[MissionItem, ...]) -> None:
        """The MAVLink mission protocol: MISSION_COUNT, the vehicle requests each item,
        MISSION_ACK ends it. The whole exchange is restarted when the vehicle goes quiet."""
        loop = asyncio.get_running_loop()
        try:
            for _ in range(RETRIES):
                peer.upload = _Upload(items, loop.create_future())
                self._send(
                    peer,
                    mavlink.MAVLink_mission_count_message(
                        peer.system_id,
                        peer.component_id,
                        len(items),
                        mavlink.MAV_MISSION_TYPE_MISSION,
                    ),
                )
                try:
                    result = await asyncio.wait_for(
                        peer.upload.done, ACK_TIMEOUT_S + 0.2 * len(items)
                    )
                except TimeoutError:
                    continue
                if result == mavlink.MAV_MISSION_ACCEPTED:
                    return
                name = mavlink.enums["MAV_MISSION_RESULT"][result].name
                raise CommandFailed(f"mission upload refused by the vehicle ({name})")
        finally:
            peer.upload = None
        raise CommandFailed(f"mission upload not acknowledged after {RETRIES} tries")
