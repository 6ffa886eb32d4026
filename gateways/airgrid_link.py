"""A gateway's side of the air grid: who it may admit (registry over REST, as a gateway
credential), the telemetry uplink (POST /v1/telemetry, with a bounded buffer that rides out
outages), the detection uplink (POST /v1/detections, batched and retried the same way), the
drone commands it must deliver (airgrid.drone.commands) and the command outcomes it reports
(airgrid.mission.events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from airgrid import tracing
from airgrid.bus import (
    ConsumerSpec,
    Producer,
    SeenIds,
    TopicView,
    header,
    now_ms,
    run_batches,
    start_group_consumer,
)
from airgrid.config import Settings
from airgrid.topics import DRONE_COMMANDS, MISSION_EVENTS
from airgrid.v1 import command_pb2, inspection_pb2, mission_pb2, telemetry_pb2
from gateways.metrics import (
    BUFFERED,
    DETECTIONS_DROPPED,
    DETECTIONS_FORWARDED,
    DETECTIONS_REJECTED,
    TELEMETRY_DROPPED,
    TELEMETRY_FORWARDED,
)

log = logging.getLogger("airgrid.gateway")

PROTOBUF = "application/x-protobuf"
OUTCOME_EVENT = "airgrid.gateway.command_outcome"
# Commands older than this (a new gateway reading the topic's history) are not delivered.
MAX_COMMAND_AGE_S = 300.0
UPLINK_BATCH = 1000
UPLINK_INTERVAL_S = 0.1
MAX_BACKOFF_S = 5.0
# A detection batch goes when it is this large or its oldest detection waited this long.
DETECTION_BATCH = 100
DETECTION_WAIT_S = 1.0
DETECTION_BUFFER = 2_000

CommandHandler = Callable[[command_pb2.DroneCommand], Coroutine[Any, Any, None]]


class GatewayRefused(RuntimeError):
    """The air grid refused the gateway's credential or cannot be reached at start."""


@dataclass(frozen=True)
class RegisteredDrone:
    id: str
    home_nest: str
    cruise_altitude_m: float


@dataclass
class LinkConfig:
    gateway: str
    key: str
    registry_url: str
    telemetry_url: str
    consumer_group: str
    buffer_records: int = 20_000
    registry_refresh_s: float = 10.0


class AirgridLink:
    """One per gateway process. `submit` never blocks: records wait in a bounded buffer
    (the oldest are dropped, and counted, when it overflows) until the service takes them."""

    def __init__(self, settings: Settings, config: LinkConfig) -> None:
        self.settings = settings
        self.config = config
        self.drones: dict[str, RegisteredDrone] = {}
        self.buffer: deque[telemetry_pb2.Telemetry] = deque()
        self.detections: deque[inspection_pb2.Detection] = deque()
        self._oldest_detection_at = 0.0
        self.serves: Callable[[str], bool] = lambda drone_id: drone_id in self.drones
        self.registry_changed = asyncio.Event()
        self._http = httpx.AsyncClient(
            timeout=10.0, headers={"Authorization": f"Bearer {config.key}"}
        )
        self._producer = Producer(settings, source=f"airgrid/gateway/{config.gateway}")
        self._missions = TopicView(settings, MISSION_EVENTS, mission_pb2.MissionEvent.FromString)
        self._consumer: AIOKafkaConsumer | None = None
        self._seen = SeenIds(capacity=20_000)
        self._labels = {"gateway": config.gateway}

    async def start(self) -> None:
        await self.refresh_registry(strict=True)
        await self._producer.start()
        await self._missions.start()
        spec = ConsumerSpec(topics=[DRONE_COMMANDS], group_id=self.config.consumer_group)
        self._consumer = await start_group_consumer(self.settings, spec)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush(timeout_s=2.0)
        with contextlib.suppress(Exception):
            await self.flush_detections(timeout_s=2.0)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._missions.stop()
        with contextlib.suppress(Exception):
            await self._producer.stop()
        await self._http.aclose()

    # -- registry -----------------------------------------------------------------------------

    async def refresh_registry(self, *, strict: bool = False) -> None:
        """Read the drones this credential may report; unknown devices wait for this list."""
        url = f"{self.config.registry_url.rstrip('/')}/v1/drones"
        found: dict[str, RegisteredDrone] = {}
        offset = 0
        try:
            while True:
                response = await self._http.get(url, params={"limit": 100, "offset": offset})
                if response.status_code in (401, 403):
                    raise GatewayRefused(
                        f"the registry refused the gateway credential ({response.status_code}); "
                        "ask an admin for a gateway key (POST /v1/credentials role=gateway)"
                    )
                response.raise_for_status()
                page = response.json()
                for item in page["items"]:
                    if item.get("status", "active") == "retired":
                        continue
                    found[item["id"]] = RegisteredDrone(
                        item["id"], item["home_nest"], float(item["cruise_altitude_m"])
                    )
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    break
        except (httpx.HTTPError, KeyError, ValueError) as error:
            if strict:
                raise GatewayRefused(
                    f"the registry at {url} cannot be read ({error!r}); is it running?"
                ) from error
            log.warning("registry refresh failed", extra={"error": repr(error)})
            return
        if found.keys() != self.drones.keys():
            added = sorted(found.keys() - self.drones.keys())
            log.info("registered drones", extra={"drones": len(found), "added": added[:20]})
            self.drones = found
            self.registry_changed.set()

    async def _refresh_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.registry_refresh_s)
            if not stop.is_set():
                await self.refresh_registry()

    # -- telemetry uplink ---------------------------------------------------------------------

    def submit(self, record: telemetry_pb2.Telemetry) -> None:
        self.buffer.append(record)
        overflow = len(self.buffer) - self.config.buffer_records
        for _ in range(max(0, overflow)):
            dropped = self.buffer.popleft()
            TELEMETRY_DROPPED.labels(self.config.gateway, "buffer_full").inc()
            log.warning(
                "telemetry buffer full; oldest record dropped",
                extra={"drone_id": dropped.drone_id, "buffer": self.config.buffer_records},
            )
        BUFFERED.labels(**self._labels).set(len(self.buffer))

    async def _uplink_forever(self, stop: asyncio.Event) -> None:
        backoff = UPLINK_INTERVAL_S
        while not stop.is_set():
            if not self.buffer:
                await asyncio.sleep(UPLINK_INTERVAL_S)
                continue
            if await self.send_once():
                backoff = UPLINK_INTERVAL_S
                if len(self.buffer) < UPLINK_BATCH:
                    await asyncio.sleep(UPLINK_INTERVAL_S)
            else:
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def send_once(self) -> bool:
        """Post one batch; False when the service could not take it (it is kept for later)."""
        batch = [self.buffer.popleft() for _ in range(min(UPLINK_BATCH, len(self.buffer)))]
        body = telemetry_pb2.TelemetryBatch(records=batch).SerializeToString()
        url = f"{self.config.telemetry_url.rstrip('/')}/v1/telemetry"
        try:
            response = await self._http.post(url, content=body, headers={"Content-Type": PROTOBUF})
        except httpx.HTTPError as error:
            self._put_back(batch)
            log.warning("telemetry uplink failed; kept for retry", extra={"error": repr(error)})
            return False
        if response.status_code == 202:
            TELEMETRY_FORWARDED.labels(**self._labels).inc(len(batch))
            BUFFERED.labels(**self._labels).set(len(self.buffer))
            return True
        if response.status_code >= 500 or response.status_code in (401, 429):
            self._put_back(batch)
            log.warning(
                "telemetry service did not take the batch; kept for retry",
                extra={"status": response.status_code, "detail": response.text[:200]},
            )
            return False
        TELEMETRY_DROPPED.labels(self.config.gateway, f"http_{response.status_code}").inc(
            len(batch)
        )
        log.warning(
            "telemetry batch refused; dropped",
            extra={"status": response.status_code, "detail": response.text[:300]},
        )
        return True

    def _put_back(self, batch: list[telemetry_pb2.Telemetry]) -> None:
        keep = [*batch, *self.buffer]
        overflow = len(keep) - self.config.buffer_records
        if overflow > 0:
            TELEMETRY_DROPPED.labels(self.config.gateway, "buffer_full").inc(overflow)
            keep = keep[overflow:]
        self.buffer = deque(keep)
        BUFFERED.labels(**self._labels).set(len(self.buffer))

    async def flush(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.buffer and asyncio.get_running_loop().time() < deadline:
            if not await self.send_once():
                await asyncio.sleep(0.2)

    # -- detection uplink ---------------------------------------------------------------------

    def submit_detection(self, detection: inspection_pb2.Detection) -> None:
        """Queue a decoded detection; bounded like telemetry (the oldest dropped, counted)."""
        if not self.detections:
            self._oldest_detection_at = asyncio.get_running_loop().time()
        self.detections.append(detection)
        while len(self.detections) > DETECTION_BUFFER:
            dropped = self.detections.popleft()
            DETECTIONS_DROPPED.labels(self.config.gateway, "buffer_full").inc()
            log.warning(
                "detection buffer full; oldest detection dropped",
                extra={"drone_id": dropped.drone_id, "detection_id": dropped.id},
            )

    def detections_due(self, now: float) -> bool:
        """A batch is due when it is full or its oldest detection waited DETECTION_WAIT_S."""
        if not self.detections:
            return False
        full = len(self.detections) >= DETECTION_BATCH
        return full or now - self._oldest_detection_at >= DETECTION_WAIT_S

    async def _detections_forever(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        backoff = UPLINK_INTERVAL_S
        while not stop.is_set():
            if not self.detections_due(loop.time()):
                await asyncio.sleep(UPLINK_INTERVAL_S)
                continue
            if await self.send_detections_once():
                backoff = UPLINK_INTERVAL_S
            else:
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def send_detections_once(self) -> bool:
        """Post one batch of detections; False when the service could not take it (5xx, 401,
        429 or no connection: it is kept for a retry). Any other 4xx is the batch's fault,
        so it is dropped, counted, and the problem detail logged."""
        count = min(DETECTION_BATCH, len(self.detections))
        batch = [self.detections.popleft() for _ in range(count)]
        if not batch:
            return True
        body = inspection_pb2.DetectionBatch(detections=batch).SerializeToString()
        url = f"{self.config.telemetry_url.rstrip('/')}/v1/detections"
        try:
            response = await self._http.post(url, content=body, headers={"Content-Type": PROTOBUF})
        except httpx.HTTPError as error:
            self._put_back_detections(batch)
            log.warning("detection uplink failed; kept for retry", extra={"error": repr(error)})
            return False
        if response.status_code == 202:
            self._count_rejected(response)
            DETECTIONS_FORWARDED.labels(**self._labels).inc(len(batch))
            if self.detections:
                self._oldest_detection_at = asyncio.get_running_loop().time()
            return True
        if response.status_code >= 500 or response.status_code in (401, 429):
            self._put_back_detections(batch)
            log.warning(
                "telemetry service did not take the detections; kept for retry",
                extra={"status": response.status_code, "detail": response.text[:200]},
            )
            return False
        DETECTIONS_DROPPED.labels(self.config.gateway, f"http_{response.status_code}").inc(
            len(batch)
        )
        log.warning(
            "detection batch refused; dropped",
            extra={"status": response.status_code, "problem": response.text[:500]},
        )
        return True

    def _count_rejected(self, response: httpx.Response) -> None:
        """Detections the service took but routed to the DLQ, by its reason."""
        try:
            rejected = response.json().get("rejected") or []
        except ValueError:
            return
        for item in rejected:
            reason = str(item.get("reason", "unknown"))
            DETECTIONS_REJECTED.labels(self.config.gateway, reason).inc()
            log.info(
                "detection rejected by the air grid",
                extra={"detection_id": item.get("id"), "reason": reason},
            )

    def _put_back_detections(self, batch: list[inspection_pb2.Detection]) -> None:
        keep = [*batch, *self.detections]
        overflow = len(keep) - DETECTION_BUFFER
        if overflow > 0:
            DETECTIONS_DROPPED.labels(self.config.gateway, "buffer_full").inc(overflow)
            keep = keep[overflow:]
        self.detections = deque(keep)

    async def flush_detections(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.detections and asyncio.get_running_loop().time() < deadline:
            if not await self.send_detections_once():
                await asyncio.sleep(0.2)

    async def run_uplinks(self, stop: asyncio.Event) -> None:
        """Telemetry and detections to the telemetry service until `stop`."""
        await asyncio.gather(self._uplink_forever(stop), self._detections_forever(stop))

    # -- commands -----------------------------------------------------------------------------

    async def run(self, on_command: CommandHandler, stop: asyncio.Event) -> None:
        """Uplink, registry refresh and command delivery until `stop`."""
        assert self._consumer is not None
        spec = ConsumerSpec(topics=[DRONE_COMMANDS], group_id=self.config.consumer_group)
        pending: set[asyncio.Task[None]] = set()

        async def handle(records: list[ConsumerRecord[bytes, bytes]]) -> None:
            for record in records:
                command = self._command_of(record)
                if command is None:
                    continue
                # Each command is delivered on its own: a slow acknowledgement never holds
                # back the next drone's command.
                parent = tracing.context_of_headers(record.headers)
                delivery = on_command(command)
                if parent is not None:
                    delivery = _traced_delivery(delivery, command, record.topic, parent)
                task = asyncio.create_task(delivery)
                pending.add(task)
                task.add_done_callback(pending.discard)

        tasks = [
            asyncio.create_task(self.run_uplinks(stop), name="uplinks"),
            asyncio.create_task(self._refresh_forever(stop), name="registry"),
            asyncio.create_task(
                run_batches(self._consumer, handle, spec=spec, name="gateway", stop=stop),
                name="commands",
            ),
        ]
        try:
            await stop.wait()
        finally:
            for task in [*tasks, *pending]:
                task.cancel()
            await asyncio.gather(*tasks, *pending, return_exceptions=True)

    def _command_of(self, record: ConsumerRecord[bytes, bytes]) -> command_pb2.DroneCommand | None:
        key = record.key.decode(errors="replace") if record.key else ""
        if key and not self.serves(key):
            return None
        try:
            command = command_pb2.DroneCommand.FromString(record.value or b"")
        except Exception:
            log.warning("undecodable drone command skipped", extra={"offset": record.offset})
            return None
        if not self.serves(command.drone_id):
            return None
        command_id = command.command_id or header(record, "ce_id")
        if self._seen.seen(command_id):
            return None
        age_s = (now_ms() - command.issued_time_ms) / 1000 if command.issued_time_ms else 0.0
        if age_s > MAX_COMMAND_AGE_S:
            log.info(
                "stale drone command skipped",
                extra={"drone_id": command.drone_id, "age_s": round(age_s)},
            )
            return None
        return command

    async def publish_outcome(
        self, command: command_pb2.DroneCommand, *, delivered: bool, reason: str
    ) -> None:
        """The command's outcome as a mission event of the mission it belongs to.

        The dispatch service's own event (read from airgrid.mission.events) gives the incident
        and the stage; a delivered command keeps that stage, an undelivered one is FAILED.
        """
        context = {
            "drone_id": command.drone_id,
            "mission_id": command.mission_id,
            "command_id": command.command_id,
            "reason": reason,
        }
        known: mission_pb2.MissionEvent | None = self._missions.items.get(command.mission_id)
        if not command.mission_id or known is None:
            log.info("command outcome (no mission to report it on)", extra=context)
            return
        event = mission_pb2.MissionEvent(
            mission_id=command.mission_id,
            incident_id=known.incident_id,
            drone_id=command.drone_id,
            stage=known.stage if delivered else mission_pb2.MISSION_STAGE_FAILED,
            event_time_ms=now_ms(),
            reason=reason,
        )
        try:
            await self._producer.send_and_wait(
                MISSION_EVENTS,
                event.SerializeToString(),
                key=command.mission_id,
                ce_type=OUTCOME_EVENT,
                ce_id=f"{command.command_id or command.mission_id}:outcome",
                extra_headers=tracing.current_headers(),
            )
        except Exception as error:
            log.warning("command outcome not published", extra={**context, "error": repr(error)})
            return
        log.info("command outcome published", extra=context)


async def _traced_delivery(
    delivery: Coroutine[Any, Any, None],
    command: command_pb2.DroneCommand,
    topic: str,
    parent: tracing.Context,
) -> None:
    """Deliver a command in a span of the trace its record carries (the incident's): the
    outcome it publishes continues that trace."""
    with tracing.span(
        "gateway.command",
        parent=parent,
        kind=tracing.CONSUMER,
        attributes={
            **tracing.cloudevent_attributes(
                ce_id=command.command_id, ce_type="airgrid.drone.command", topic=topic
            ),
            "airgrid.mission_id": command.mission_id,
            "airgrid.drone_id": command.drone_id,
        },
    ):
        await delivery
