"""`airgrid gateway mqtt`: DJI-Cloud-API-style docks and aircraft over MQTT into the air grid.

Subscribes to `{prefix}thing/product/+/osd`, `.../state`, `.../services_reply` and
`.../events` (the `ai_detection` events of onboard detectors, forwarded as detections). A dock's
OSD gives the nest's status (mode, wind, drone in dock) and, while the aircraft sits in the
dock, its docked telemetry; an aircraft's OSD gives its flight telemetry. Devices are
admitted once their serial number maps to a drone the registry shows this gateway (or a
configured dock). Commands become `services` requests on the dock's topic, each tracked to
its `services_reply` (retried with the same bid and a new tid); the gateway times the hold
on scene and sends `return_home` after it. The broker connection is re-made after a blip,
and requests made meanwhile wait in a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from airgrid.bus import now_ms
from airgrid.geo import haversine_m
from airgrid.v1 import command_pb2, inspection_pb2, telemetry_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.command_outcome import Outcome, report_command
from gateways.dji_codec import (
    DETECTION_METHOD,
    EVENTS,
    OSD,
    SERVICES,
    SERVICES_REPLY,
    STATE,
    AircraftReport,
    DockReport,
    Envelope,
    PayloadError,
    ServiceCall,
    aircraft_report,
    detection_of,
    dock_report,
    end_point,
    is_dock_payload,
    parse_envelope,
    parse_topic,
    reply_result,
    request_payload,
    service_calls,
    topic_of,
)
from gateways.metrics import (
    COMMANDS,
    DECODE_ERRORS,
    DEVICES_LINKED,
    MESSAGES_IN,
    MESSAGES_OUT,
    NEST_DRONE_IN_DOCK,
    NEST_MODE,
    NEST_WIND,
)

log = logging.getLogger("airgrid.gateway.mqtt")

GATEWAY = "mqtt"
REPLY_TIMEOUT_S = 3.0
RETRIES = 3
ARRIVAL_RADIUS_M = 25.0
PENDING_PUBLISHES = 1000
# A dock silent for this long is offline; DJI docks send OSD every 2 s.
DOCK_SILENCE_S = 10.0

Submit = Callable[[telemetry_pb2.Telemetry], None]
SubmitDetection = Callable[[inspection_pb2.Detection], None]


class CommandFailed(RuntimeError):
    """The device refused a request or never replied; the message says which."""


@dataclass
class Dock:
    sn: str
    nest_id: str
    report: DockReport | None = None
    last_heard: float = 0.0
    online: bool = False


@dataclass
class Aircraft:
    sn: str
    drone: RegisteredDrone
    seq: int
    report: AircraftReport | None = None
    dock_sn: str = ""
    mission_id: str = ""
    airborne_on_mission: bool = False
    follow_up: asyncio.Task[None] | None = None


@dataclass
class _Request:
    call: ServiceCall
    bid: str
    reply: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MqttGateway:
    """Device state and the command logic; `handle` takes one MQTT message, `publish` is
    injected so the logic runs the same with or without a broker."""

    def __init__(
        self,
        *,
        docks: Mapping[str, str],
        aircraft: Mapping[str, str],
        registered: Callable[[], Mapping[str, RegisteredDrone]],
        submit: Submit,
        submit_detection: SubmitDetection | None = None,
        outcome: Outcome | None = None,
        topic_prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dock_nests = dict(docks)
        self.aircraft_drones = dict(aircraft)
        self.registered = registered
        self.submit = submit
        self.submit_detection = submit_detection
        self.outcome = outcome
        self.prefix = topic_prefix
        self.clock = clock
        self.docks: dict[str, Dock] = {}
        self.aircraft: dict[str, Aircraft] = {}
        self.requests: dict[str, _Request] = {}
        self.outbox: deque[tuple[str, bytes]] = deque(maxlen=PENDING_PUBLISHES)
        self.client: aiomqtt.Client | None = None
        self._seq_base = now_ms()
        self._errors: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._in = {
            kind: MESSAGES_IN.labels(GATEWAY, kind) for kind in (OSD, STATE, SERVICES_REPLY, EVENTS)
        }

    # -- input --------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes) -> None:
        parsed = parse_topic(topic, self.prefix)
        if parsed is None:
            self._reject("unexpected_topic", f"topic {topic} is not thing/product/<sn>/<kind>")
            return
        sn, kind = parsed
        if kind == SERVICES:
            return  # our own requests, echoed by a wildcard subscription
        try:
            envelope = parse_envelope(payload)
            counter = self._in.get(kind)
            (counter or MESSAGES_IN.labels(GATEWAY, kind)).inc()
            if kind == SERVICES_REPLY:
                self._reply(envelope.tid, reply_result(envelope))
            elif kind in (OSD, STATE):
                self._device_data(sn, kind, envelope.data)
            elif kind == EVENTS:
                self._event(sn, envelope)
            else:
                self._reject("unexpected_topic", f"kind {kind!r} of {sn} is not handled")
        except PayloadError as error:
            self._reject(error.reason, f"{sn}/{kind}: {error}")

    def _device_data(self, sn: str, kind: str, data: dict[str, Any]) -> None:
        if sn in self.dock_nests:
            dock = self._dock(sn)
            if kind == STATE or not is_dock_payload(data):
                log.info("dock state", extra={"nest_id": dock.nest_id, "data": str(data)[:300]})
                return
            self._dock_osd(dock, dock_report(data))
            return
        craft = self._admit_aircraft(sn)
        if craft is None:
            return
        if kind == STATE:
            log.info("aircraft state", extra={"drone_id": craft.drone.id, "data": str(data)[:300]})
            return
        craft.report = aircraft_report(data)
        home = self.docks.get(craft.dock_sn)
        in_dock = bool(home and home.report and home.report.drone_in_dock)
        mode = craft.report.flight_mode(in_dock=in_dock)
        if mode is None:
            return
        wind = home.report.wind_mps if home and home.report else craft.report.wind_mps
        r = craft.report
        self._emit(
            craft,
            lon=r.lon,
            lat=r.lat,
            alt_m=r.alt_m,
            ground_speed_mps=r.ground_speed_mps,
            vertical_speed_mps=r.vertical_speed_mps,
            heading_deg=r.heading_deg,
            battery_pct=r.battery_pct,
            flight_mode=mode,
            wind_mps=wind,
        )

    def _event(self, gateway_sn: str, envelope: Envelope) -> None:
        """A device event; `ai_detection` becomes a detection, other events are logged."""
        if envelope.method != DETECTION_METHOD:
            log.info("device event", extra={"sn": gateway_sn, "method": envelope.method[:60]})
            return
        sn, detection = detection_of(envelope)
        craft = self._admit_aircraft(sn)
        if craft is None:
            return
        detection.drone_id = craft.drone.id
        detection.mission_id = craft.mission_id
        if self.submit_detection is not None:
            self.submit_detection(detection)

    def _dock(self, sn: str) -> Dock:
        dock = self.docks.get(sn)
        if dock is None:
            dock = self.docks[sn] = Dock(sn, self.dock_nests[sn])
            log.info("dock admitted", extra={"dock_sn": sn, "nest_id": dock.nest_id})
        return dock

    def _dock_osd(self, dock: Dock, report: DockReport) -> None:
        dock.report = report
        dock.last_heard = self.clock()
        if dock.online != report.online:
            log.info("nest status", extra={"nest_id": dock.nest_id, "online": report.online})
        dock.online = report.online
        self._count_linked()
        NEST_WIND.labels(dock.nest_id).set(report.wind_mps)
        NEST_DRONE_IN_DOCK.labels(dock.nest_id).set(1 if report.drone_in_dock else 0)
        NEST_MODE.labels(dock.nest_id).set(report.mode_code)
        if not report.aircraft_sn:
            return
        craft = self._admit_aircraft(report.aircraft_sn)
        if craft is None:
            return
        craft.dock_sn = dock.sn
        if report.drone_in_dock and report.aircraft_battery_pct is not None:
            # A docked aircraft is powered down and silent: the dock speaks for it.
            self._emit(
                craft,
                lon=report.lon,
                lat=report.lat,
                alt_m=0.0,
                ground_speed_mps=0.0,
                vertical_speed_mps=0.0,
                heading_deg=0.0,
                battery_pct=report.aircraft_battery_pct,
                flight_mode=telemetry_pb2.FLIGHT_MODE_DOCKED,
                wind_mps=report.wind_mps,
            )

    def _admit_aircraft(self, sn: str) -> Aircraft | None:
        drone_id = self.aircraft_drones.get(sn, sn)
        drone = self.registered().get(drone_id)
        if drone is None:
            self._reject(
                "unknown_device",
                f"serial {sn} maps to no drone the registry shows this gateway; register it "
                "or map it with --aircraft SN=DRONE_ID",
            )
            return None
        craft = self.aircraft.get(sn)
        if craft is None:
            craft = self.aircraft[sn] = Aircraft(sn, drone, seq=self._seq_base)
            log.info("aircraft admitted", extra={"aircraft_sn": sn, "drone_id": drone_id})
        return craft

    def _emit(self, craft: Aircraft, *, flight_mode: int, **fields: float) -> None:
        if flight_mode == telemetry_pb2.FLIGHT_MODE_DOCKED:
            if craft.airborne_on_mission:
                log.info(
                    "aircraft docked; mission flown",
                    extra={"drone_id": craft.drone.id, "mission_id": craft.mission_id},
                )
                craft.mission_id = ""
                craft.airborne_on_mission = False
        elif craft.mission_id:
            craft.airborne_on_mission = True
        craft.seq += 1
        dock = self.docks.get(craft.dock_sn)
        self.submit(
            telemetry_pb2.Telemetry(
                drone_id=craft.drone.id,
                seq=craft.seq,
                event_time_ms=now_ms(),
                flight_mode=flight_mode,  # type: ignore[arg-type]
                nest_id=dock.nest_id if dock else craft.drone.home_nest,
                mission_id=craft.mission_id,
                **fields,  # type: ignore[arg-type]
            )
        )

    def _reject(self, reason: str, detail: str) -> None:
        DECODE_ERRORS.labels(GATEWAY, reason).inc()
        count = self._errors[reason] = self._errors.get(reason, 0) + 1
        if count <= 5 or count % 1000 == 0:
            log.warning(
                "MQTT input dropped",
                extra={"reason": reason, "detail": detail[:300], "count": count},
            )

    def check_docks(self) -> None:
        now = self.clock()
        for dock in self.docks.values():
            if dock.online and now - dock.last_heard > DOCK_SILENCE_S:
                dock.online = False
                log.warning("dock silent; nest offline", extra={"nest_id": dock.nest_id})
        self._count_linked()

    def _count_linked(self) -> None:
        DEVICES_LINKED.labels(GATEWAY).set(sum(1 for d in self.docks.values() if d.online))

    # -- output -------------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes) -> None:
        self.outbox.append((topic, payload))
        self._wake.set()

    async def drain(self, client: aiomqtt.Client) -> None:
        """Publish queued requests; they stay queued while the broker is away."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.outbox:
                topic, payload = self.outbox[0]
                await client.publish(topic, payload, qos=1)
                self.outbox.popleft()
                MESSAGES_OUT.labels(GATEWAY, SERVICES).inc()

    def _reply(self, tid: str, result: int) -> None:
        request = self.requests.get(tid)
        if request is not None and not request.reply.done():
            request.reply.set_result(result)

    async def call(self, dock_sn: str, call: ServiceCall) -> None:
        """One services request, retried (new tid, same bid) until a services_reply."""
        bid = uuid.uuid4().hex
        topic = topic_of(dock_sn, SERVICES, self.prefix)
        for _ in range(RETRIES):
            tid = uuid.uuid4().hex
            request = self.requests[tid] = _Request(call, bid)
            try:
                self._publish(topic, request_payload(call, tid=tid, bid=bid, now_ms=now_ms()))
                try:
                    result = await asyncio.wait_for(request.reply, REPLY_TIMEOUT_S)
                except TimeoutError:
                    continue
            finally:
                self.requests.pop(tid, None)
            if result == 0:
                return
            raise CommandFailed(f"{call.method} refused by the dock (result {result})")
        raise CommandFailed(f"no services_reply to {call.method} after {RETRIES} tries")

    def serves(self, drone_id: str) -> bool:
        return drone_id in self.registered() and any(
            c.drone.id == drone_id and c.dock_sn for c in self.aircraft.values()
        )

    async def deliver(self, command: command_pb2.DroneCommand) -> None:
        kind = command_pb2.CommandKind.Name(command.kind).removeprefix("COMMAND_KIND_").lower()
        context = {"drone_id": command.drone_id, "mission_id": command.mission_id, "command": kind}
        craft = next((c for c in self.aircraft.values() if c.drone.id == command.drone_id), None)
        started = time.perf_counter()
        try:
            if craft is None or not craft.dock_sn:
                raise CommandFailed(f"{command.drone_id} has no dock on this gateway")
            calls = service_calls(command, cruise_alt_m=craft.drone.cruise_altitude_m)
            if calls is None:
                raise CommandFailed(f"command kind {command.kind} has no Cloud API form")
            if craft.follow_up is not None:
                craft.follow_up.cancel()
                craft.follow_up = None
            flies = command.kind in (command_pb2.COMMAND_KIND_LAUNCH, command_pb2.COMMAND_KIND_GOTO)
            if flies and command.mission_id:
                craft.mission_id = command.mission_id
                craft.airborne_on_mission = bool(craft.report and craft.report.alt_m > 0.5)
            await self.call(craft.dock_sn, calls[0])
        except CommandFailed as failure:
            await report_command(
                self.outcome, command, GATEWAY, "MQTT", context, log, started, failure
            )
            return
        await report_command(self.outcome, command, GATEWAY, "MQTT", context, log, started)
        if len(calls) > 1 or command.hold_seconds > 0:
            craft.follow_up = asyncio.create_task(
                self._follow_up(craft, command, calls[0], calls[1:])
            )

    async def _follow_up(
        self,
        craft: Aircraft,
        command: command_pb2.DroneCommand,
        first: ServiceCall,
        rest: list[ServiceCall],
    ) -> None:
        """The rest of a flight the Cloud API takes in steps: the path after take-off, then,
        after the hold on scene, the way home."""
        context = {"drone_id": craft.drone.id, "mission_id": command.mission_id}
        try:
            end = end_point(first)
            for call in rest:
                await self._arrival(craft, *end, moving=True)
                await self.call(craft.dock_sn, call)
                end = end_point(call)
            if command.hold_seconds > 0:
                await self._arrival(craft, command.target_lon, command.target_lat, moving=False)
                log.info("on scene; holding", extra={**context, "hold_s": command.hold_seconds})
                await asyncio.sleep(command.hold_seconds)
                await self.call(craft.dock_sn, ServiceCall("return_home", {}))
        except CommandFailed as failure:
            COMMANDS.labels(GATEWAY, "failed").inc()
            log.warning("follow-up request failed", extra={**context, "reason": str(failure)})
            if self.outcome is not None:
                await self.outcome(command, False, f"follow-up over MQTT failed: {failure}")

    async def _arrival(self, craft: Aircraft, lon: float, lat: float, *, moving: bool) -> None:
        """Until the aircraft is at (lon, lat): passing through it, or hovering there."""
        while True:
            r = craft.report
            if r is not None:
                near = haversine_m(r.lon, r.lat, lon, lat) <= ARRIVAL_RADIUS_M
                if near and (moving or r.ground_speed_mps < 0.5):
                    return
            await asyncio.sleep(0.2)

    # -- connection ---------------------------------------------------------------------------

    async def run(self, host: str, port: int, stop: asyncio.Event, client_id: str) -> None:
        """Stay connected until `stop`: subscribe, read, publish; reconnect after a blip."""
        backoff = 0.5
        topics = [topic_of("+", kind, self.prefix) for kind in (OSD, STATE, SERVICES_REPLY, EVENTS)]
        while not stop.is_set():
            try:
                async with aiomqtt.Client(host, port, identifier=client_id, keepalive=15) as client:
                    self.client = client
                    for topic in topics:
                        await client.subscribe(topic, qos=0 if topic.endswith(OSD) else 1)
                    log.info("connected to the MQTT broker", extra={"broker": f"{host}:{port}"})
                    backoff = 0.5
                    self._wake.set()
                    drain = asyncio.create_task(self.drain(client))
                    try:
                        async for message in client.messages:
                            payload = message.payload
                            if not isinstance(payload, bytes | bytearray):
                                payload = str(payload).encode()
                            self.handle(message.topic.value, bytes(payload))
                    finally:
                        drain.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await drain
            except aiomqtt.MqttError as error:
                self.client = None
                log.warning(
                    "MQTT broker connection lost; reconnecting",
                    extra={"error": repr(error), "retry_s": backoff},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(10.0, backoff * 2)

    async def watch_docks(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            self.check_docks()
