"""`airgrid sim`: runs the fleet and the incident load against a running stack.

Telemetry goes out on airgrid.telemetry.raw (or in batches to POST /v1/telemetry with each
nest gateway's credential), commands come in from airgrid.drone.commands (consumer group
`airgrid-sim`), and incidents of a load profile are posted to the dispatch service over HTTP
with each department's credential. Faults are injected on a seeded schedule. Errors are
counted and logged; they never stop the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
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
from airgrid.sim.faults import FaultEvent, fault_schedule, weather_of
from airgrid.sim.fleet import Fleet, ReportRates
from airgrid.sim.incidents import GeneratedIncident
from airgrid.sim.load import LoadModel
from airgrid.sim.outcomes import Outcomes
from airgrid.sim.physics import SimDrone, flight_mode_name
from airgrid.sim.start_state import (
    DOCKED_START,
    MID_OPERATION,
    START_STATES,
    PastLoad,
    Sortie,
    mid_operation,
)
from airgrid.topics import DRONE_COMMANDS, TELEMETRY_RAW
from airgrid.v1 import command_pb2, telemetry_pb2

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
# How long the broker may hold an empty fetch of drone commands: the floor on the delay from a
# dispatch decision to the drone's launch (Tansu answers an empty fetch only when it runs out).
COMMAND_FETCH_WAIT_MS = 20
# Most seconds the incident load waits for the fleet's first reports to reach the services,
# and how often it asks the telemetry service meanwhile.
FLEET_REPORT_WAIT_S = 5.0
FLEET_POLL_S = 0.1


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
    faults_injected: int = 0
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    # Monotonic times of recent posts, for the incidents-per-minute throughput.
    recent_posts: deque[float] = field(default_factory=lambda: deque(maxlen=5000))
    loading: bool = True  # still posting incidents (False once the load duration is over)

    def posts_per_minute(self, window_s: float = 60.0) -> float:
        now = time.monotonic()
        return sum(1 for t in self.recent_posts if now - t <= window_s) * 60.0 / window_s


def read_department_keys(path: Path) -> dict[str, str]:
    """The department codes and keys from a credentials file written by `airgrid up`."""
    return _read_keys(path, "department")


def _read_keys(path: Path, role: str) -> dict[str, str]:
    data = orjson.loads(path.read_bytes())
    found = data.get(role) if isinstance(data, dict) else None
    if not isinstance(found, dict):
        raise ValueError(f"{path} has no {role!r} object of {role} keys")
    return {str(code): str(key) for code, key in found.items() if key}


async def run_sim(
    settings: Settings,
    *,
    profile: str = "nominal",
    rate_per_min: float | None = None,
    seed: int = 7,
    duration_s: float | None = None,
    load_s: float | None = None,
    credentials_path: Path | None = None,
    dispatch_url: str | None = None,
    telemetry_url: str | None = None,
    stats: SimStats | None = None,
    stop: asyncio.Event | None = None,
    rates: ReportRates | None = None,
    faults: str = "none",
    telemetry_via: str = "kafka",
    start_hour: float = 10.0,
    outcomes: Outcomes | None = None,
    start_state: str = DOCKED_START,
) -> SimStats:
    """Run until `stop` is set or `duration_s` has passed; returns the counters.

    Incidents follow `profile` (or a fixed total `rate_per_min`) for `load_s` seconds (the
    whole run when None); the drones keep flying until the end, so a run can drain.
    `start_state`: every drone docked and full (`docked`), or the fleet as the last half hour
    of the same load leaves it (`mid-operation`: see `airgrid.sim.start_state`).
    """
    if telemetry_via not in ("kafka", "http"):
        raise ValueError("telemetry_via is kafka or http")
    if start_state not in START_STATES:
        raise ValueError(f"start_state is one of {', '.join(START_STATES)}")
    stats = stats if stats is not None else SimStats()
    stop = stop if stop is not None else asyncio.Event()
    reference = load_reference(settings.reference_data)

    path = credentials_path or settings.state_dir / "credentials.json"
    keys = _department_keys(path)
    load: LoadModel | None = None
    if (rate_per_min is None or rate_per_min > 0) and keys:
        load = LoadModel(
            reference,
            profile=profile,
            rate_per_min=rate_per_min,
            seed=seed,
            start_hour=start_hour,
            departments=sorted(keys),
        )
    weather = weather_of(seed)
    sorties: list[Sortie] = []

    def mid_operation_start(drones: dict[str, SimDrone]) -> None:
        if load is not None:
            past = PastLoad(load.rate_at, load.scene_point, load.on_scene_seconds, load.allowed)
            sorties.extend(mid_operation(drones, past, weather=weather, seed=seed))

    started = now_ms()
    # The mid-operation warm-up flies ~200 sorties through the physics (~0.3 s): off the loop.
    fleet = await asyncio.to_thread(
        Fleet,
        reference,
        start_ms=started,
        seq_base=started,
        rates=rates,
        weather=weather,
        initial_state=mid_operation_start if start_state == MID_OPERATION else None,
    )
    stats.drones = len(fleet)
    stats.airborne = fleet.airborne
    stats.by_status = fleet.by_status()
    schedule = fault_schedule(
        level=faults,
        duration_s=duration_s or 24 * 3600.0,
        drone_ids=list(fleet.drones),
        nest_holds=fleet.wind_hold,
        seed=seed,
    )

    gateway_keys: dict[str, str] = {}
    if telemetry_via == "http":
        gateway_keys = _read_keys(path, "gateway")
    sender = _TelemetrySender(
        producer=Producer(settings, source=SOURCE) if telemetry_via == "kafka" else None,
        url=f"{(telemetry_url or settings.url_of('telemetry')).rstrip('/')}/v1/telemetry",
        gateway_keys=gateway_keys,
        home_nest={d.id: d.home_nest for d in reference.drones},
    )
    consumer: AIOKafkaConsumer | None = None
    tasks: list[asyncio.Task[None]] = []

    def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
        tasks.append(asyncio.create_task(coro, name=name))

    try:
        # Telemetry and incidents flow at once: the first incident is posted as soon as the
        # services know every drone's first report (so dispatch picks the nearest, not the
        # first it hears of), while the command consumer still joins its group (it reads from
        # the earliest offset, so commands decided meanwhile are flown as soon as it has
        # joined).
        await sender.start()
        reported = asyncio.Event()
        spawn(_tick_loop(fleet, sender, stats, stop, schedule, reported), "telemetry")
        if load is not None:
            url = f"{(dispatch_url or settings.url_of('dispatch')).rstrip('/')}/v1/incidents"
            states = f"{(telemetry_url or settings.url_of('telemetry')).rstrip('/')}"
            fleet_known = _fleet_known(
                reported,
                f"{states}/v1/drones/states",
                keys[min(keys)],
                drones=len(fleet),
                seq_base=started,
            )
            spawn(
                _incident_loop(load, url, keys, load_s, stats, stop, outcomes, fleet_known),
                "incidents",
            )
        spec = ConsumerSpec(
            topics=[DRONE_COMMANDS],
            group_id=CONSUMER_GROUP,
            max_records=500,
            fetch_max_wait_ms=COMMAND_FETCH_WAIT_MS,
        )
        consumer = await start_group_consumer(settings, spec)
        handler = _CommandHandler(fleet, stats)
        log.info(
            "simulator started",
            extra={
                "drones": len(fleet),
                "profile": profile if load else "none",
                "rate_per_min": load.rate_per_min if load else 0.0,
                "seed": seed,
                "start_state": start_state,
                "airborne_at_start": fleet.airborne,
                "warm_up_sorties": len(sorties),
                "faults": faults,
                "wind_mps": fleet.weather.wind_mps,
                "telemetry_via": telemetry_via,
                "bootstrap": settings.bootstrap_servers,
            },
        )
        spawn(run_batches(consumer, handler, spec=spec, name="sim-commands", stop=stop), "commands")
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
            await sender.stop()
        log.info("simulator stopped", extra={"stats": _loggable(stats)})
    return stats


def _loggable(stats: SimStats) -> dict[str, object]:
    return {k: v for k, v in vars(stats).items() if k != "recent_posts"}


class _TelemetrySender:
    """Telemetry out on Kafka, or batched per nest gateway to POST /v1/telemetry."""

    def __init__(
        self,
        *,
        producer: Producer | None,
        url: str,
        gateway_keys: dict[str, str],
        home_nest: dict[str, str],
    ) -> None:
        self.producer = producer
        self.url = url
        self.gateway_keys = gateway_keys
        self.home_nest = home_nest
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self.producer is not None:
            await self.producer.start()
        else:
            self.client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.client is not None:
            await self.client.aclose()

    async def send(self, records: list[telemetry_pb2.Telemetry], stats: SimStats) -> None:
        if self.producer is not None:
            await self._send_kafka(self.producer, records, stats)
        elif self.client is not None:
            await self._send_http(self.client, records, stats)

    async def _send_kafka(
        self, producer: Producer, records: list[telemetry_pb2.Telemetry], stats: SimStats
    ) -> None:
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

    async def _send_http(
        self, client: httpx.AsyncClient, records: list[telemetry_pb2.Telemetry], stats: SimStats
    ) -> None:
        by_nest: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            nest = self.home_nest.get(record.drone_id, "")
            by_nest.setdefault(nest, []).append(_telemetry_json(record))
        for nest, batch in sorted(by_nest.items()):
            key = self.gateway_keys.get(nest)
            if key is None:
                stats.telemetry_failed += len(batch)
                continue
            try:
                response = await client.post(
                    self.url, json={"records": batch}, headers={"Authorization": f"Bearer {key}"}
                )
            except httpx.HTTPError as error:
                stats.telemetry_failed += len(batch)
                log.warning("telemetry post failed", extra={"nest_id": nest, "error": repr(error)})
                continue
            if response.status_code in (200, 202):
                stats.telemetry_sent += len(batch)
            else:
                stats.telemetry_failed += len(batch)
                log.warning(
                    "telemetry refused",
                    extra={"nest_id": nest, "status": response.status_code},
                )


def _telemetry_json(record: telemetry_pb2.Telemetry) -> dict[str, Any]:
    return {
        "drone_id": record.drone_id,
        "seq": record.seq,
        "event_time_ms": record.event_time_ms,
        "lon": record.lon,
        "lat": record.lat,
        "alt_m": record.alt_m,
        "ground_speed_mps": record.ground_speed_mps,
        "vertical_speed_mps": record.vertical_speed_mps,
        "heading_deg": record.heading_deg,
        "battery_pct": record.battery_pct,
        "flight_mode": flight_mode_name(record.flight_mode),
        "nest_id": record.nest_id,
        "mission_id": record.mission_id,
        "wind_mps": record.wind_mps,
        "faults": list(record.faults),
    }


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
    fleet: Fleet,
    sender: _TelemetrySender,
    stats: SimStats,
    stop: asyncio.Event,
    faults: list[FaultEvent],
    reported: asyncio.Event | None = None,
) -> None:
    """Step the fleet every TICK_S, inject the faults due and send the telemetry due,
    acknowledged per tick; `reported` is set once every drone has reported."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    began = last
    next_tick = last
    pending = deque(faults)
    while not stop.is_set():
        next_tick += TICK_S
        now = loop.time()
        if next_tick > now:
            await asyncio.sleep(next_tick - now)
        else:
            next_tick = now  # fell behind: do not try to catch up with a burst
        now = loop.time()
        dt, last = min(MAX_STEP_S, now - last), now
        wall_ms = now_ms()
        while pending and pending[0].offset_s <= now - began:
            fault = pending.popleft()
            fleet.inject(fault, wall_ms)
            stats.faults_injected += 1
            stats.faults_by_kind[fault.kind] = stats.faults_by_kind.get(fault.kind, 0) + 1
        records = fleet.tick(wall_ms, dt)
        stats.airborne = fleet.airborne
        stats.by_status = fleet.by_status()
        if records:
            await sender.send(records, stats)
        if reported is not None and not reported.is_set() and fleet.all_reported:
            reported.set()


async def _incident_loop(
    load: LoadModel,
    url: str,
    keys: dict[str, str],
    load_s: float | None,
    stats: SimStats,
    stop: asyncio.Event,
    outcomes: Outcomes | None,
    fleet_known: Coroutine[Any, Any, None] | None = None,
) -> None:
    """Post each scheduled incident at its offset, counted from the moment the services know
    every drone (`fleet_known` returns, or FLEET_REPORT_WAIT_S passed); each post runs on its
    own so a slow one never holds back the schedule."""
    in_flight: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    if fleet_known is not None:
        try:
            await asyncio.wait_for(fleet_known, FLEET_REPORT_WAIT_S)
        except TimeoutError:
            log.warning(
                "the services do not know every drone yet; posting incidents anyway",
                extra={"waited_s": FLEET_REPORT_WAIT_S},
            )
    began = loop.time()
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        try:
            for scheduled in load.events():
                if load_s is not None and scheduled.offset_s >= load_s:
                    break
                wait = began + scheduled.offset_s - loop.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    break
                task = asyncio.create_task(
                    _post(client, url, keys, scheduled.incident, stats, outcomes)
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            stats.loading = False
            await asyncio.gather(*in_flight, return_exceptions=True)
            await stop.wait()
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)


async def _fleet_known(
    reported: asyncio.Event, states_url: str, key: str, *, drones: int, seq_base: int
) -> None:
    """Returns once every drone has reported and the telemetry service's state view holds a
    report of this run (seq above seq_base) from each. The dispatch worker reads the same
    state topic, so it then knows the fleet too: an incident decided before that goes for
    good to the best drone dispatch has heard of so far (at start-up the first incidents
    reached dispatch ~1 s before the fleet did, and went to far drones)."""
    await reported.wait()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                response = await client.get(states_url, headers=headers)
                if response.status_code == 200:
                    known = response.json()["drones"]
                    if sum(1 for d in known if int(d["last_seq"]) > seq_base) >= drones:
                        return
            await asyncio.sleep(FLEET_POLL_S)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    keys: dict[str, str],
    incident: GeneratedIncident,
    stats: SimStats,
    outcomes: Outcomes | None = None,
) -> None:
    stats.incidents_posted += 1
    stats.recent_posts.append(time.monotonic())
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
        if outcomes is not None and incident_id:
            outcomes.on_posted(
                incident_id,
                department=incident.department,
                priority=int(incident.body["priority"]),
                type=str(incident.body["type"]),
                at_ms=now_ms(),
            )
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
