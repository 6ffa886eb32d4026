"""Telemetry benchmark: bare aiokafka consume+decode versus the full pipeline, same records,
same round; then record→state and record→feed latency under live load at a fixed rate
against the broker hop; in interleaved rounds on each broker compared."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import (
    Producer,
    client_options,
    ensure_topics,
    topic_name,
)
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.migrate import upgrade
from airgrid.topics import (
    TELEMETRY_RAW,
)
from airgrid.v1 import telemetry_pb2
from loadtests import bench_faust
from loadtests.bench_brokers import broker_hop, broker_labels, brokers, database, fresh_topics
from loadtests.bench_telemetry_config import (
    BenchConfig,
    Figures,
)
from loadtests.bench_telemetry_live import LoopWatch, PhaseProfile, live_load
from loadtests.bench_telemetry_observer import ObserverProcess
from loadtests.bench_telemetry_records import drone_ids, missions_of, preproduce, seed
from loadtests.bench_telemetry_summary import Round, round_lines, side_by_side, summarize
from services.telemetry.feed_routing import FeedRouting, incident_view, mission_view
from services.telemetry.models import track_points
from services.telemetry.stream import TelemetryWorker
from services.telemetry.topic_views import registry_view, state_view


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
    profile = PhaseProfile("backlog")
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
        profile = PhaseProfile("live")
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
