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
from collections import deque
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from airgrid.bus import (
    ConsumerSpec,
    Producer,
    now_ms,
    run_batches,
    start_group_consumer,
)
from airgrid.config import Settings
from airgrid.reference import ReferenceData, load_reference
from airgrid.sim.command_handler import CommandHandler
from airgrid.sim.detection_sender import DetectionSender
from airgrid.sim.faults import FaultEvent, fault_schedule, weather_of
from airgrid.sim.fleet import Fleet, ReportRates
from airgrid.sim.incident_poster import fleet_known, incident_loop
from airgrid.sim.load import LoadModel
from airgrid.sim.outcomes import Outcomes
from airgrid.sim.physics import SimDrone
from airgrid.sim.sim_stats import SimStats
from airgrid.sim.start_state import (
    DOCKED_START,
    MID_OPERATION,
    START_STATES,
    PastLoad,
    Sortie,
    mid_operation,
)
from airgrid.sim.telemetry_sender import TelemetrySender
from airgrid.topics import DRONE_COMMANDS

log = logging.getLogger("airgrid.sim")

SOURCE = "airgrid/sim"
CONSUMER_GROUP = "airgrid-sim"
TICK_S = 0.1
# A stalled event loop must not teleport drones across the zone in one step.
MAX_STEP_S = 1.0
# How long the broker may hold an empty fetch of drone commands: the floor on the delay from a
# dispatch decision to the drone's launch (Tansu answers an empty fetch only when it runs out).
COMMAND_FETCH_WAIT_MS = 20


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
    sender = TelemetrySender(
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
            known = fleet_known(
                reported,
                f"{states}/v1/drones/states",
                keys[min(keys)],
                drones=len(fleet),
                seq_base=started,
            )
            spawn(
                incident_loop(load, url, keys, load_s, stats, stop, outcomes, known),
                "incidents",
            )
        spawn(
            _post_detections(settings, reference, path, telemetry_url, seed, fleet, stats, stop),
            "detections",
        )
        spec = ConsumerSpec(
            topics=[DRONE_COMMANDS],
            group_id=CONSUMER_GROUP,
            max_records=500,
            fetch_max_wait_ms=COMMAND_FETCH_WAIT_MS,
        )
        consumer = await start_group_consumer(settings, spec)
        handler = CommandHandler(fleet, stats)
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


async def _post_detections(
    settings: Settings,
    reference: ReferenceData,
    path: Path,
    telemetry_url: str | None,
    seed: int,
    fleet: Fleet,
    stats: SimStats,
    stop: asyncio.Event,
) -> None:
    """What the cameras see of the run's ground truth, posted with the nest gateways' keys;
    nothing (said once) without the keys."""
    try:
        gateway_keys = _read_keys(path, "gateway")
    except (OSError, ValueError, orjson.JSONDecodeError) as error:
        log.warning(
            "no gateway keys; the drones post no detections",
            extra={"path": str(path), "error": str(error)},
        )
        await stop.wait()  # a loop that ends stops the run (`_until_done`)
        return
    url = f"{(telemetry_url or settings.url_of('telemetry')).rstrip('/')}/v1/detections"
    # A day of ground truth takes about 0.3 s to draw: off the loop, and not in the way of
    # the command consumer's start.
    sender = await asyncio.to_thread(
        DetectionSender,
        reference,
        url=url,
        gateway_keys=gateway_keys,
        seed=seed,
        start_ms=now_ms(),
    )
    await sender.run(fleet, stats, stop)


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


async def _tick_loop(
    fleet: Fleet,
    sender: TelemetrySender,
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
