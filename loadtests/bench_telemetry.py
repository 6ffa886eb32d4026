"""Telemetry benchmark: bare aiokafka consume+decode versus the full pipeline, same records,
same round; then record→state and record→feed latency under live load at a fixed rate
against the broker hop; in interleaved rounds on each broker compared."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import math
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import (
    Producer,
    client_options,
    ensure_topics,
    now_ms,
    topic_name,
    topic_partitions,
)
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.migrate import upgrade
from airgrid.topics import (
    DEPARTMENT_CODES,
    DRONE_STATE,
    FEEDS,
    INCIDENTS,
    MISSION_EVENTS,
    REGISTRY_CHANGES,
    TELEMETRY_RAW,
)
from airgrid.v1 import drone_state_pb2, incident_pb2, mission_pb2, registry_pb2, telemetry_pb2
from loadtests import bench_faust
from loadtests.bench_brokers import broker_hop, broker_labels, brokers, database, fresh_topics
from loadtests.rounds import Spread, largest, percentile, ratio, spread, table
from services.telemetry.batched_sends import PartitionedBatches
from services.telemetry.feeds import FeedRouting, incident_view, mission_view
from services.telemetry.store import track_points
from services.telemetry.stream import TelemetryWorker, registry_view, state_view

NOMINAL_RECORDS_PER_S = 930.0
PIPELINE_RATIO_TARGET = 0.25
FEED_P99_TARGET_MS = 100.0


@dataclass
class BenchConfig:
    records: int = 60_000
    drones: int = 1_860
    rate: float = 10 * NOMINAL_RECORDS_PER_S
    seconds: float = 15.0
    on_mission_fraction: float = 0.2
    # The faust agent is slow enough that a part of the records gives its rate.
    faust_records: int = 20_000
    brokers: str = "both"
    rounds: int = 3
    hop_samples: int = 100


@dataclass
class Figures:
    hop_ms: list[float] = field(default_factory=list)
    bare_rate: float = 0.0
    faust_rate: float = 0.0
    pipeline_rate: float = 0.0
    raw_ms: list[float] = field(default_factory=list)
    state_ms: list[float] = field(default_factory=list)
    feed_ms: list[float] = field(default_factory=list)
    produced_rate: float = 0.0
    # CPU of the worker's process (worker, its views and the bench loop) per handled record.
    backlog_cpu_us: float = 0.0
    live_cpu_us: float = 0.0
    handled_rate: float = 0.0
    # Where a tail latency can come from in the worker's process, during the live load:
    # event-loop stalls (a 5 ms sleep that wakes late) and garbage collections.
    loop_stall_ms: list[float] = field(default_factory=list)
    gc_pause_ms: list[float] = field(default_factory=list)


def drone_ids(count: int) -> list[str]:
    return [f"bench-dr-{i:05d}" for i in range(count)]


def telemetry_value(drone_id: str, seq: int, event_time_ms: int, mission_id: str) -> bytes:
    index = int(drone_id.rsplit("-", 1)[-1])
    return telemetry_pb2.Telemetry(
        drone_id=drone_id,
        seq=seq,
        event_time_ms=event_time_ms,
        lon=121.3 + (index % 100) * 0.003 + seq * 1e-6,
        lat=31.1 + (index // 100) * 0.003,
        alt_m=80.0,
        ground_speed_mps=12.0,
        heading_deg=90.0,
        battery_pct=80.0,
        flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
        mission_id=mission_id,
    ).SerializeToString()


def missions_of(drones: list[str], fraction: float) -> dict[str, str]:
    on_mission = drones[: int(len(drones) * fraction)]
    return {drone_id: f"bench-m-{drone_id}" for drone_id in on_mission}


async def seed(settings: Settings, drones: list[str], missions: dict[str, str]) -> None:
    producer = Producer(settings, source="airgrid/bench")
    await producer.start()
    try:
        for drone_id in drones:
            change = registry_pb2.RegistryChange(
                entity_id=drone_id,
                version=1,
                drone=registry_pb2.Drone(id=drone_id, home_nest="bench-nest", status="active"),
            )
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="bench"
            )
        for i, (drone_id, mission_id) in enumerate(missions.items()):
            department = DEPARTMENT_CODES[i % len(DEPARTMENT_CODES)]
            incident_id = f"bench-inc-{i}"
            incident = incident_pb2.IncidentEvent(
                accepted=incident_pb2.Incident(id=incident_id, department=department)
            )
            await producer.send(
                INCIDENTS, incident.SerializeToString(), key=incident_id, ce_type="bench"
            )
            mission = mission_pb2.MissionEvent(
                mission_id=mission_id, incident_id=incident_id, drone_id=drone_id
            )
            await producer.send(
                MISSION_EVENTS, mission.SerializeToString(), key=mission_id, ce_type="bench"
            )
        await producer.flush()
    finally:
        await producer.stop()


async def preproduce(
    settings: Settings, drones: list[str], missions: dict[str, str], records: int
) -> int:
    """Produces `records` records, round-robin over the drones; returns the next seq."""
    producer = Producer(settings, source="airgrid/bench")
    await producer.start()
    seq = 0
    try:
        sent = 0
        while sent < records:
            seq += 1
            stamp = now_ms()
            for drone_id in drones:
                if sent >= records:
                    break
                value = telemetry_value(drone_id, seq, stamp, missions.get(drone_id, ""))
                await producer.send(TELEMETRY_RAW, value, key=drone_id, ce_type="bench")
                sent += 1
            await producer.flush()
    finally:
        await producer.stop()
    return seq + 1


async def bare_loop(settings: Settings, records: int) -> float:
    """(a) The baseline: a group consumer reading the raw topic and decoding each record."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, TELEMETRY_RAW),
        **client_options(settings),
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        count, started = 0, 0.0
        while count < records:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if batches and not started:
                started = time.perf_counter()
            for batch in batches.values():
                for record in batch:
                    telemetry_pb2.Telemetry.FromString(record.value or b"")
                    count += 1
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def clear_bench_track(engine: AsyncEngine) -> None:
    """Earlier runs' points of the bench drones go, so every run inserts the same new rows."""
    async with engine.begin() as connection:
        await connection.execute(
            sa.delete(track_points).where(track_points.c.drone_id.like("bench-dr-%"))
        )


class CountingWorker(TelemetryWorker):
    """The real worker, timed from its first batch to the one that completes the count."""

    handled = 0
    first_batch_at = 0.0
    last_batch_at = 0.0

    async def start_batch(self, records: list[Any]) -> asyncio.Future[Any]:
        if not self.first_batch_at:
            self.first_batch_at = time.perf_counter()
        done = await super().start_batch(records)

        def count(_: asyncio.Future[Any]) -> None:
            self.handled += len(records)
            self.last_batch_at = time.perf_counter()

        done.add_done_callback(count)
        return done


class Observer:
    """Reads a topic from its end and records now − event time of each item, in ms."""

    def __init__(
        self, settings: Settings, topics: list[str], event_time: Callable[[bytes], int]
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.event_time = event_time
        self.samples: list[float] = []
        self.since_ms = 0  # items of records stamped before this (the pre-produced) are skipped
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.telemetry_fetch_wait_ms,
        )
        await consumer.start()
        tps = [tp for name in self.topics for tp in await topic_partitions(consumer, name)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            arrived = time.time() * 1000
            if not self.since_ms:
                continue
            for batch in batches.values():
                for record in batch:
                    stamped = self.event_time(record.value or b"")
                    if stamped >= self.since_ms:
                        self.samples.append(arrived - stamped)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


def observe(settings_json: str, ready: Any, done: Any, results: Any) -> None:
    """Child process: both observers, from the topics' ends; their samples go back at `done`.
    Out of the worker's process, so measuring takes no CPU from what is measured."""
    settings = Settings.model_validate_json(settings_json)

    async def run() -> None:
        # The baseline: the same records seen on the raw topic by a bare consumer, i.e. the
        # producer -> broker -> consumer hop alone, with the same fetch wait as the worker.
        raw = Observer(settings, [topic_name(settings, TELEMETRY_RAW)], _raw_event_time)
        state = Observer(settings, [topic_name(settings, DRONE_STATE)], _state_event_time)
        feed = Observer(settings, [topic_name(settings, t) for t in FEEDS], _feed_event_time)
        observers = (raw, state, feed)
        for observer in observers:
            await observer.start()
        raw.since_ms = state.since_ms = feed.since_ms = now_ms()
        ready.set()
        await asyncio.to_thread(done.wait)
        for observer in observers:
            await observer.stop()
        results.send((raw.samples, state.samples, feed.samples))

    asyncio.run(run())


class ObserverProcess:
    """The observers' child process, seen from the bench."""

    def __init__(self, context: Any, settings: Settings) -> None:
        self.ready, self.done = context.Event(), context.Event()
        self.results, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=observe, args=(settings.model_dump_json(), self.ready, self.done, sender)
        )

    async def start(self) -> None:
        self.process.start()
        if not await asyncio.to_thread(self.ready.wait, 60):
            raise RuntimeError("the observer process did not start within 60 s")

    async def samples(self) -> tuple[list[float], list[float], list[float]]:
        self.done.set()
        raw, state, feed = await asyncio.to_thread(self.results.recv)
        return list(raw), list(state), list(feed)

    def stop(self) -> None:
        self.done.set()
        if self.process.pid is not None:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()


def _raw_event_time(value: bytes) -> int:
    return int(telemetry_pb2.Telemetry.FromString(value).event_time_ms)


def _state_event_time(value: bytes) -> int:
    return int(drone_state_pb2.DroneState.FromString(value).event_time_ms)


def _feed_event_time(value: bytes) -> int:
    return int(orjson.loads(value)["event_time_ms"])


def live_load(
    settings_json: str,
    drones: list[str],
    missions: dict[str, str],
    first_seq: int,
    cfg: Any,
    produced: Any,
    produced_seconds: Any,
) -> None:
    """Child process: produces at a fixed rate (by elapsed time, so a late tick catches up),
    stamping each record with its send time; `produced` counts what it sent and
    `produced_seconds` the time it took from its first record, not from the process start.
    Partition batches keep the generator cheap on a machine whose cores it shares with what
    it measures."""
    settings = Settings.model_validate_json(settings_json)

    async def produce() -> None:
        producer = Producer(settings, source="airgrid/bench-load")
        await producer.start()
        batches = PartitionedBatches(producer.raw)
        topic = topic_name(settings, TELEMETRY_RAW)
        await batches.know([topic])
        fixed = [
            ("ce_specversion", b"1.0"),
            ("ce_source", b"airgrid/bench-load"),
            ("ce_type", b"bench"),
            ("content-type", TELEMETRY_RAW.content_type.encode()),
        ]
        tick_s = 0.01
        sent, index, seq = 0, 0, first_seq
        started = time.perf_counter()
        next_tick = started
        try:
            while (elapsed := time.perf_counter() - started) < cfg["seconds"]:
                stamp = now_ms()
                ce_time = datetime.now(UTC).isoformat().encode()
                due = int(cfg["rate"] * elapsed) - sent
                for _ in range(due):
                    drone_id = drones[index]
                    value = telemetry_value(drone_id, seq, stamp, missions.get(drone_id, ""))
                    headers = [
                        *fixed,
                        ("ce_id", f"{drone_id}:{seq}".encode()),
                        ("ce_time", ce_time),
                    ]
                    batches.add(topic, drone_id.encode(), value, headers)
                    index += 1
                    if index == len(drones):
                        index, seq = 0, seq + 1
                await batches.send()
                sent += max(due, 0)
                produced.value = sent
                produced_seconds.value = time.perf_counter() - started
                next_tick += tick_s
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())


class _Profile:
    """cProfile of one phase of the worker's process when AIRGRID_BENCH_PROFILE names a
    directory (`<phase>.prof` there; read with `python -m pstats`); otherwise nothing."""

    def __init__(self, phase: str) -> None:
        folder = os.environ.get("AIRGRID_BENCH_PROFILE")
        self.path = Path(folder) / f"{phase}.prof" if folder else None
        self.profiler = cProfile.Profile() if self.path else None
        if self.profiler is not None:
            self.profiler.enable()

    def save(self) -> None:
        if self.profiler is not None and self.path is not None:
            self.profiler.disable()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.profiler.dump_stats(self.path)
            self.profiler = None


class LoopWatch:
    """Samples how late a 5 ms sleep wakes up (event-loop stalls, wall time) and the CPU time
    of every garbage collection, in the worker's process, while running."""

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        # CPU time of the collecting thread: on a shared machine wall time would add the
        # time the process waited for a core.
        if phase == "start":
            self._gc_started = time.thread_time()
        elif self._gc_started:
            self.gc_pauses.append((time.thread_time() - self._gc_started) * 1000)

    async def _sample(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(0.005)
            self.stalls.append((time.perf_counter() - asked) * 1000 - 5)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._sample())

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()


async def faust_rate(context: Any, settings: Settings, records: int) -> float:
    """(c) A faust-streaming agent decoding the same records, in a child process."""
    result = context.Value("d", 0.0)
    child = context.Process(
        target=bench_faust.measure, args=(settings.model_dump_json(), records, result)
    )
    child.start()
    await asyncio.to_thread(child.join)
    return float(result.value)


async def run_pipeline_bench(settings: Settings, cfg: BenchConfig, faust: bool) -> Figures:
    """One round on `settings`' fresh topics: the broker hop, (a), (b) (and the faust agent
    when `faust`), then the live load."""
    figures = Figures()
    drones = drone_ids(cfg.drones)
    missions = missions_of(drones, cfg.on_mission_fraction)
    figures.hop_ms = await broker_hop(settings, cfg.hop_samples, settings.telemetry_fetch_wait_ms)
    await ensure_topics(settings)
    await seed(settings, drones, missions)
    next_seq = await preproduce(settings, drones, missions, cfg.records)

    figures.bare_rate = await bare_loop(settings, cfg.records)
    context = multiprocessing.get_context("spawn")
    if faust and cfg.faust_records:
        # The agent waits for this many records: never more than there are.
        faust_records = min(cfg.faust_records, cfg.records)
        figures.faust_rate = await faust_rate(context, settings, faust_records)

    engine = create_engine(settings)
    await clear_bench_track(engine)
    producer = Producer(settings, source="airgrid/telemetry")
    await producer.start()
    views = [
        registry_view(settings),
        state_view(settings),
        incident_view(settings),
        mission_view(settings),
    ]
    registry, states, incidents, missions_view = views
    for view in views:
        await view.start()
    worker = CountingWorker(
        settings=settings,
        producer=producer,
        registry=registry,
        states=states,
        engine=engine,
        routing=FeedRouting(incidents, missions_view),
    )
    await asyncio.wait_for(incidents.caught_up.wait(), 60)
    await asyncio.wait_for(missions_view.caught_up.wait(), 60)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    observing = ObserverProcess(context, settings)
    profile = _Profile("backlog")
    cpu_started = time.process_time()
    try:
        while worker.handled < cfg.records:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        figures.pipeline_rate = worker.handled / (worker.last_batch_at - worker.first_batch_at)
        figures.backlog_cpu_us = (time.process_time() - cpu_started) / worker.handled * 1e6
        profile.save()

        await observing.start()
        before = worker.handled
        profile = _Profile("live")
        watch = LoopWatch()
        watch.start()
        started = time.perf_counter()
        cpu_started = time.process_time()
        produced = context.Value("q", 0)
        produced_seconds = context.Value("d", 0.0)
        child = context.Process(
            target=live_load,
            args=(
                settings.model_dump_json(),
                drones,
                missions,
                next_seq,
                {"rate": cfg.rate, "seconds": cfg.seconds},
                produced,
                produced_seconds,
            ),
        )
        child.start()
        await asyncio.to_thread(child.join)
        figures.produced_rate = produced.value / max(produced_seconds.value, 1e-9)
        for _ in range(600):  # up to 60 s for the backlog to drain
            if worker.handled >= before + produced.value:
                break
            await asyncio.sleep(0.1)
        figures.handled_rate = (worker.handled - before) / (time.perf_counter() - started)
        live_cpu_s = time.process_time() - cpu_started
        profile.save()
        watch.stop()
        figures.loop_stall_ms, figures.gc_pause_ms = watch.stalls, watch.gc_pauses
        figures.live_cpu_us = live_cpu_s / max(worker.handled - before, 1) * 1e6
        await asyncio.sleep(0.5)  # the observers' last fetch
        figures.raw_ms, figures.state_ms, figures.feed_ms = await observing.samples()
    finally:
        stop.set()
        observing.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        for view in views:
            await view.stop()
        await producer.stop()
        await engine.dispose()
    return figures


def run(cfg: BenchConfig, settings: Settings, print_line: Callable[[str], None]) -> list[Round]:
    """Runs `cfg.rounds` rounds on each broker compared, the brokers alternating round by
    round; each round is the broker hop, (a), (b) and the live load on fresh topics. The
    track goes to PostgreSQL, the production path (asyncpg COPY): AIRGRID_DATABASE_URL when
    set, else a private cluster started here and removed at the end."""
    labels = broker_labels(cfg.brokers, settings)
    done: list[Round] = []
    with database(settings) as (db_settings, shown):
        upgrade(db_settings)
        print_line(
            f"telemetry bench: per round {cfg.records} pre-produced records, {cfg.drones} "
            f"drones, then {cfg.rate:.0f} records/s for {cfg.seconds:.0f} s; on "
            f"{' and '.join(labels)}, {cfg.rounds} rounds; database: {shown}"
        )
        print_line(
            "each round: the broker hop (produce -> consume of one record), (a) bare aiokafka "
            "consume+decode, (b) the full pipeline on the same records, then the live load"
        )
        with brokers(labels, db_settings) as started:
            for n in range(1, cfg.rounds + 1):
                for label in labels:  # brokers alternate, so a drift of the machine hits both
                    figures = asyncio.run(
                        run_pipeline_bench(fresh_topics(started[label]), cfg, faust=n == 1)
                    )
                    done.append(Round(label, n, figures))
                    for line in round_lines(done[-1], cfg):
                        print_line(line)
    summaries = {
        label: summarize([r.figures for r in done if r.label == label]) for label in labels
    }
    for label in labels:
        s = summaries[label]
        print_line(
            f"{label}: ratio (b)/(a) {s.ratio.show('.3f')} and record -> feed p99 / broker "
            f"hop p99 under load {s.feed_ratio.show('.1f', 'x')}, over {cfg.rounds} rounds "
            "(median, min–max)"
        )
    print_line("")
    for line in side_by_side(labels, summaries, cfg):
        print_line(line)
    return done


@dataclass(frozen=True)
class Round:
    label: str
    number: int
    figures: Figures


def round_lines(r: Round, cfg: BenchConfig) -> list[str]:
    f = r.figures
    lines = [
        f"  round {r.number} {r.label:<8}: broker hop p50 {percentile(f.hop_ms, 0.5):.2f} p99 "
        f"{percentile(f.hop_ms, 0.99):.2f} ms | (a) {f.bare_rate:,.0f}/s (b) "
        f"{f.pipeline_rate:,.0f}/s ratio {ratio(f.pipeline_rate, f.bare_rate):.3f} | CPU/record "
        f"{f.backlog_cpu_us:.1f} / {f.live_cpu_us:.1f} us",
        f"      live {f.produced_rate:,.0f}/s produced, {f.handled_rate:,.0f}/s handled | "
        + " | ".join(
            f"{name} p50 {percentile(samples, 0.5):.1f} p99 {percentile(samples, 0.99):.1f} ms"
            for name, samples in (
                ("raw (hop)", f.raw_ms),
                ("state", f.state_ms),
                ("feed", f.feed_ms),
            )
        )
        + f" | feed p99 / hop p99 {feed_ratio(f):.1f}x",
        f"      worker loop stall p99 {percentile(f.loop_stall_ms, 0.99):.1f} ms, max "
        f"{max(f.loop_stall_ms, default=0.0):.1f} ms; {len(f.gc_pause_ms)} GC runs, longest "
        f"{max(f.gc_pause_ms, default=0.0):.1f} ms CPU",
    ]
    if f.faust_rate:
        lines.append(
            f"      (c) faust agent, decode only: {f.faust_rate:,.0f} records/s (first "
            f"{min(cfg.faust_records, cfg.records):,}); (c)/(a) "
            f"{ratio(f.faust_rate, f.bare_rate):.3f}"
        )
    return lines


def feed_ratio(f: Figures) -> float:
    return ratio(percentile(f.feed_ms, 0.99), percentile(f.raw_ms, 0.99))


@dataclass(frozen=True)
class BrokerSummary:
    hop_p50: Spread
    hop_p99: Spread
    bare: Spread
    pipeline: Spread
    ratio: Spread
    produced: Spread
    raw_p50: Spread
    raw_p99: Spread
    state_p99: Spread
    feed_p50: Spread
    feed_p99: Spread
    feed_ratio: Spread
    live_cpu_us: Spread
    faust: float

    def feed_stages(self) -> dict[str, float]:
        """Where the feed's p99 goes, from the medians over the rounds: the broker hop under
        the same load (record -> raw topic seen by a bare consumer), and what the worker
        adds on top of it (its fetch, decode, state, feed routing and the produce)."""
        return {
            "broker hop": self.raw_p99.median,
            "worker": self.feed_p99.median - self.raw_p99.median,
        }


def summarize(rounds: list[Figures]) -> BrokerSummary:
    def over(figure: Callable[[Figures], float]) -> Spread:
        return spread([figure(f) for f in rounds])

    return BrokerSummary(
        hop_p50=over(lambda f: percentile(f.hop_ms, 0.5)),
        hop_p99=over(lambda f: percentile(f.hop_ms, 0.99)),
        bare=over(lambda f: f.bare_rate),
        pipeline=over(lambda f: f.pipeline_rate),
        ratio=over(lambda f: ratio(f.pipeline_rate, f.bare_rate)),
        produced=over(lambda f: f.produced_rate),
        raw_p50=over(lambda f: percentile(f.raw_ms, 0.5)),
        raw_p99=over(lambda f: percentile(f.raw_ms, 0.99)),
        state_p99=over(lambda f: percentile(f.state_ms, 0.99)),
        feed_p50=over(lambda f: percentile(f.feed_ms, 0.5)),
        feed_p99=over(lambda f: percentile(f.feed_ms, 0.99)),
        feed_ratio=over(feed_ratio),
        live_cpu_us=over(lambda f: f.live_cpu_us),
        faust=max((f.faust_rate for f in rounds), default=0.0),
    )


def ratio_verdict(s: BrokerSummary) -> str:
    if s.ratio.rounds == 0:
        return "no figure"
    return "met" if s.ratio.median >= PIPELINE_RATIO_TARGET else "not met"


def feed_verdict(s: BrokerSummary, cfg: BenchConfig) -> str:
    """Met or not at the rate produced, and where missed, the stage that holds the time."""
    p99 = s.feed_p99.median
    if math.isnan(p99):
        return "no figure"
    short = (
        f" (load reached {s.produced.median:,.0f} of {cfg.rate:,.0f}/s)"
        if s.produced.median < 0.95 * cfg.rate
        else ""
    )
    if p99 <= FEED_P99_TARGET_MS:
        return "met" + short
    name, ms = largest(s.feed_stages())
    return f"not met{short}: {name} holds {ms:.0f} of {p99:.0f} ms"


def side_by_side(
    labels: list[str], summaries: dict[str, BrokerSummary], cfg: BenchConfig
) -> list[str]:
    def row(figure: str, show: Callable[[BrokerSummary], str], target: str) -> list[str]:
        return [figure, *(show(summaries[label]) for label in labels), target]

    rows = [
        row("broker hop, one record, p50", lambda s: s.hop_p50.show(".2f", " ms"), "baseline"),
        row("broker hop, one record, p99", lambda s: s.hop_p99.show(".2f", " ms"), "baseline"),
        row("(a) bare aiokafka consume + decode", lambda s: s.bare.show(",.0f", "/s"), "baseline"),
        row("(b) full pipeline, 1 worker", lambda s: s.pipeline.show(",.0f", "/s"), ""),
        row(
            "ratio (b)/(a)",
            lambda s: s.ratio.show(".3f"),
            f">= {PIPELINE_RATIO_TARGET}",
        ),
        row("", ratio_verdict, ""),
        row(
            f"live load produced ({cfg.rate:,.0f}/s asked)",
            lambda s: s.produced.show(",.0f", "/s"),
            "",
        ),
        row("worker CPU per live record", lambda s: s.live_cpu_us.show(".1f", " us"), ""),
        row(
            "broker hop under load (record -> raw), p50 / p99",
            lambda s: f"{s.raw_p50.median:.1f} / {s.raw_p99.median:.1f} ms",
            "baseline",
        ),
        row("record -> state, p99", lambda s: s.state_p99.show(".1f", " ms"), ""),
        row("record -> feed, p50", lambda s: s.feed_p50.show(".1f", " ms"), ""),
        row(
            "record -> feed, p99",
            lambda s: s.feed_p99.show(".1f", " ms"),
            f"<= {FEED_P99_TARGET_MS:.0f} ms",
        ),
        row("feed p99 / hop p99 under load", lambda s: s.feed_ratio.show(".1f", "x"), ""),
        row("", lambda s: feed_verdict(s, cfg), ""),
        row(
            "(c) faust agent, decode only (round 1)",
            lambda s: f"{s.faust:,.0f}/s" if s.faust else "n/a",
            "context",
        ),
    ]
    return table(["figure", *labels, "target"], rows)
