"""`airgrid sim`: runs the fleet and the incident load against a running stack.

Telemetry goes out on airgrid.telemetry.raw, commands come in from airgrid.drone.commands
(consumer group `airgrid-sim`), and incidents are posted to the dispatch service over HTTP
with each department's credential. Errors are counted and logged; they never stop the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from airgrid.bus import (
    ConsumerSpec,
    Producer,
    SeenIds,
    header,
    now_ms,
    run_batches,
    start_group_consumer,
)
from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.sim.fleet import Fleet, ReportRates
from airgrid.sim.incidents import GeneratedIncident, IncidentGenerator
from airgrid.topics import DRONE_COMMANDS, TELEMETRY_RAW
from airgrid.v1 import command_pb2

log = logging.getLogger("airgrid.sim")

SOURCE = "airgrid/sim"
CONSUMER_GROUP = "airgrid-sim"
TELEMETRY_CE_TYPE = "airgrid.telemetry"
TICK_S = 0.1
# A stalled event loop must not teleport drones across the zone in one step.
MAX_STEP_S = 1.0
# Commands older than this (a first run reading the topic's history) are not flown.
MAX_COMMAND_AGE_S = 300.0
HTTP_TIMEOUT_S = 10.0


@dataclass
class SimStats:
    """Live counters of one simulator run; `airgrid up` shows them."""

    incidents_posted: int = 0
    incidents_accepted: int = 0
    incidents_failed: int = 0
    telemetry_sent: int = 0
    telemetry_failed: int = 0
    commands_received: int = 0
    commands_applied: int = 0
    commands_ignored: int = 0
    airborne: int = 0
    drones: int = 0


def read_department_keys(path: Path) -> dict[str, str]:
    """The department codes and keys from a credentials file written by `airgrid up`."""
    data = orjson.loads(path.read_bytes())
    departments = data.get("department") if isinstance(data, dict) else None
    if not isinstance(departments, dict):
        raise ValueError(f"{path} has no 'department' object of department keys")
    return {str(code): str(key) for code, key in departments.items() if key}


async def run_sim(
    settings: Settings,
    *,
    rate_per_min: float = 12.0,
    seed: int = 7,
    duration_s: float | None = None,
    credentials_path: Path | None = None,
    dispatch_url: str | None = None,
    stats: SimStats | None = None,
    stop: asyncio.Event | None = None,
    rates: ReportRates | None = None,
) -> SimStats:
    """Run until `stop` is set or `duration_s` has passed; returns the counters."""
    stats = stats if stats is not None else SimStats()
    stop = stop if stop is not None else asyncio.Event()
    reference = load_reference(settings.reference_data)
    started = now_ms()
    fleet = Fleet(reference, start_ms=started, seq_base=started, rates=rates)
    stats.drones = len(fleet)

    keys = _department_keys(credentials_path or settings.state_dir / "credentials.json")
    generator: IncidentGenerator | None = None
    if rate_per_min > 0 and keys:
        generator = IncidentGenerator(reference, seed=seed, departments=sorted(keys))

    producer = Producer(settings, source=SOURCE)
    consumer: AIOKafkaConsumer | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await producer.start()
        spec = ConsumerSpec(topics=[DRONE_COMMANDS], group_id=CONSUMER_GROUP, max_records=500)
        consumer = await start_group_consumer(settings, spec)
        handler = _CommandHandler(fleet, stats)
        log.info(
            "simulator started",
            extra={
                "drones": len(fleet),
                "rate_per_min": rate_per_min if generator else 0.0,
                "seed": seed,
                "bootstrap": settings.bootstrap_servers,
            },
        )

        def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
            tasks.append(asyncio.create_task(coro, name=name))

        spawn(run_batches(consumer, handler, spec=spec, name="sim-commands", stop=stop), "commands")
        spawn(_tick_loop(fleet, producer, stats, stop), "telemetry")
        if generator is not None:
            url = f"{(dispatch_url or settings.url_of('dispatch')).rstrip('/')}/v1/incidents"
            spawn(_incident_loop(generator, url, keys, rate_per_min, stats, stop), "incidents")
        await _until_done(tasks, stop, duration_s)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        log.info("simulator stopped", extra={"stats": vars(stats)})
    return stats


async def _until_done(
    tasks: list[asyncio.Task[None]], stop: asyncio.Event, duration_s: float | None
) -> None:
    """Wait for stop, the duration, or a loop that died (whose error is then raised)."""
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        done, _ = await asyncio.wait(
            [stopped, *tasks], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopped.cancel()
    for task in done:
        if task is not stopped and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _department_keys(path: Path) -> dict[str, str]:
    try:
        return read_department_keys(path)
    except FileNotFoundError:
        log.warning(
            "no credentials file; simulating drones without incident load",
            extra={"path": str(path), "hint": "run `airgrid up` or pass --credentials"},
        )
    except (ValueError, orjson.JSONDecodeError) as error:
        log.warning(
            "unreadable credentials file; simulating drones without incident load",
            extra={"path": str(path), "error": str(error)},
        )
    return {}


class _CommandHandler:
    """Applies each batch of drone commands to the fleet, once per command id."""

    def __init__(self, fleet: Fleet, stats: SimStats) -> None:
        self.fleet = fleet
        self.stats = stats
        self.seen = SeenIds(capacity=50_000)

    async def __call__(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            self.handle(record)

    def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.commands_received += 1
        command = command_pb2.DroneCommand()
        try:
            command.ParseFromString(record.value or b"")
        except Exception:
            self.stats.commands_ignored += 1
            log.warning(
                "undecodable drone command skipped",
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        command_id = command.command_id or header(record, "ce_id")
        if self.seen.contains(command_id):
            self.stats.commands_ignored += 1
            return
        self.seen.remember(command_id)
        context = {
            "drone_id": command.drone_id,
            "mission_id": command.mission_id,
            "command": command_pb2.CommandKind.Name(command.kind)
            if command.kind in command_pb2.CommandKind.values()
            else str(command.kind),
        }
        age_s = (now_ms() - command.issued_time_ms) / 1000 if command.issued_time_ms else 0.0
        if age_s > MAX_COMMAND_AGE_S:
            self.stats.commands_ignored += 1
            log.info("stale drone command skipped", extra={**context, "age_s": round(age_s)})
            return
        if self.fleet.apply(command):
            self.stats.commands_applied += 1
            log.info("drone command applied", extra=context)
        else:
            self.stats.commands_ignored += 1
            log.info("drone command does not apply", extra=context)


async def _tick_loop(
    fleet: Fleet, producer: Producer, stats: SimStats, stop: asyncio.Event
) -> None:
    """Step the fleet every TICK_S and send the telemetry due, acknowledged per tick."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    next_tick = last
    while not stop.is_set():
        next_tick += TICK_S
        now = loop.time()
        if next_tick > now:
            await asyncio.sleep(next_tick - now)
        else:
            next_tick = now  # fell behind: do not try to catch up with a burst
        now = loop.time()
        dt, last = min(MAX_STEP_S, now - last), now
        records = fleet.tick(now_ms(), dt)
        stats.airborne = fleet.airborne
        if not records:
            continue
        acks = []
        for record in records:
            try:
                acks.append(
                    await producer.send(
                        TELEMETRY_RAW,
                        record.SerializeToString(),
                        key=record.drone_id,
                        ce_type=TELEMETRY_CE_TYPE,
                        ce_id=f"{record.drone_id}-{record.seq}",
                    )
                )
            except Exception as error:
                stats.telemetry_failed += 1
                log.warning(
                    "telemetry not sent",
                    extra={"drone_id": record.drone_id, "error": repr(error)},
                )
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        stats.telemetry_sent += len(results) - len(failed)
        stats.telemetry_failed += len(failed)
        if failed:
            log.warning(
                "telemetry not acknowledged",
                extra={"records": len(failed), "error": repr(failed[0])},
            )


async def _incident_loop(
    generator: IncidentGenerator,
    url: str,
    keys: dict[str, str],
    rate_per_min: float,
    stats: SimStats,
    stop: asyncio.Event,
) -> None:
    """Post an incident every interval; each post runs on its own so a slow one never
    holds back the schedule."""
    in_flight: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), generator.interval_s(rate_per_min))
                if stop.is_set():
                    break
                incident = generator.next()
                task = asyncio.create_task(_post(client, url, keys, incident, stats))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    keys: dict[str, str],
    incident: GeneratedIncident,
    stats: SimStats,
) -> None:
    stats.incidents_posted += 1
    context = {
        "department": incident.department,
        "type": incident.body["type"],
        "priority": incident.body["priority"],
    }
    key = keys.get(incident.department)
    if key is None:
        stats.incidents_failed += 1
        log.warning("no credential for the department; incident not posted", extra=context)
        return
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
    started = time.perf_counter()
    try:
        response = await client.post(url, json=incident.body, headers=headers)
    except httpx.HTTPError as error:
        stats.incidents_failed += 1
        log.warning("incident post failed", extra={**context, "error": repr(error)})
        return
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if response.status_code in (200, 201):
        stats.incidents_accepted += 1
        incident_id = _incident_id(response)
        log.info(
            "incident posted",
            extra={**context, "incident_id": incident_id, "elapsed_ms": elapsed_ms},
        )
        return
    stats.incidents_failed += 1
    log.warning(
        "incident refused",
        extra={**context, "status": response.status_code, "detail": response.text[:300]},
    )


def _incident_id(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(response.json().get("id", ""))
    return ""
