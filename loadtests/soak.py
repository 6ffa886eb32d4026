"""Soak: the stack on a private PostgreSQL and broker at 10x nominal load for a while.

    python -m loadtests.soak --minutes 10

Load: incidents at 10x the simulator's 30/min (5 per second) and docked telemetry from the
whole fleet at 10x nominal (5 Hz instead of 0.5 Hz). Samples each service's resident memory and
the consumer lag (airgrid_consumer_lag_records); at the end checks that every accepted incident
has an outcome. Passes when memory grew <= 10 % from its level after the warm-up (--warm-up,
2 minutes by default: connection pools, client buffers and the topic views fill once) to the
end, the lag stayed bounded (its last sample below --max-lag), and nothing was lost. A level
is the median of the samples in a window (--window, 2 minutes): the one right after the
warm-up and the last one; a single sample is not a level, a worker's RSS moves by 15 MiB
between samples while its Python heap stays flat. The single-sample growth and the growth from
the first sample (at 15 s) are printed too, as is the dispatch queue: the docked telemetry
never frees a drone, so from the third minute every new incident waits, and the live queue
grows with time by design of the load."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from airgrid.broker import EmbeddedBroker
from airgrid.config import Settings
from airgrid.migrate import upgrade
from airgrid.servers.ports import free_port
from airgrid.servers.postgres import PrivatePostgres
from loadtests.chaos.run import (
    OUTCOMES,
    SERVICES,
    Load,
    ServiceProcesses,
    issue_keys,
    outcomes,
    post_incidents,
    wait_ready,
)
from loadtests.telemetry_generator import generate

LAG = re.compile(r"^airgrid_consumer_lag_records\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)
QUEUED = re.compile(r"^airgrid_dispatch_queued_incidents\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def lag_and_queue(stack: ServiceProcesses) -> tuple[float, float]:
    """Consumer lag of all services and the incidents queued in the dispatch core (at 10x
    the fleet cannot keep up, so the live queue grows with time: load, not a leak)."""
    lag = queued = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for service in SERVICES:
            try:
                text = (await client.get(f"{stack.url(service)}/metrics")).text
            except httpx.HTTPError:
                continue
            lag += sum(float(v) for v in LAG.findall(text))
            if service == "dispatch":
                queued = sum(float(v) for v in QUEUED.findall(text))
    return lag, queued


def memory_growth(
    samples: list[tuple[float, dict[str, float]]], warm_up_s: float, window_s: float
) -> dict[str, tuple[float, float, float]]:
    """Per service: the median RSS of the samples in the window after the warm-up, the median
    of the samples in the last window, and the growth between them in %. One sample is not a
    level: the dispatch worker's RSS moves by about 15 MiB between two samples 15 s apart
    (transient allocations that glibc keeps or gives back), so the medians compare levels."""
    after = [m for t, m in samples if warm_up_s <= t < warm_up_s + window_s] or [samples[0][1]]
    end_from = samples[-1][0] - window_s
    last = [m for t, m in samples if t > end_from and t >= warm_up_s + window_s] or [samples[-1][1]]
    growth = {}
    for service in samples[0][1]:
        base = statistics.median(m[service] for m in after)
        end = statistics.median(m[service] for m in last)
        growth[service] = (base, end, round((end - base) / base * 100, 1) if base else 0.0)
    return growth


async def soak(
    minutes: float, max_lag: float, warm_up_s: float = 120.0, window_s: float = 120.0
) -> int:
    work = Path(tempfile.mkdtemp(prefix="airgrid-soak-"))
    pg = PrivatePostgres()
    pg.init()
    broker = EmbeddedBroker(port=free_port(), log_file=work / "broker.log")
    broker.start()
    try:
        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            database_url=pg.url,
            state_dir=work / "state",
            topic_prefix="soak.",
        )
        await asyncio.to_thread(upgrade, settings)
        keys = await issue_keys(settings)
        ports = {name: free_port() for name in SERVICES}
        env = dict(os.environ)
        env.update(
            {
                "AIRGRID_KAFKA_BOOTSTRAP": broker.bootstrap,
                "AIRGRID_DATABASE_URL": pg.url,
                "AIRGRID_TOPIC_PREFIX": "soak.",
                "AIRGRID_STATE_DIR": str(settings.state_dir),
                **{f"AIRGRID_{n.upper()}_PORT": str(p) for n, p in ports.items()},
            }
        )
        stack = ServiceProcesses(env, ports, work)
        try:
            for service in SERVICES:
                stack.start(service)
                await wait_ready(stack, service)
            load = Load()
            stop = asyncio.Event()
            incidents = asyncio.create_task(post_incidents(stack, keys, load, rate=5.0))
            telemetry = asyncio.create_task(generate(settings, 5.0, minutes * 60, stop))
            samples: list[tuple[float, dict[str, float], float]] = []
            started = time.monotonic()
            while time.monotonic() - started < minutes * 60:
                await asyncio.sleep(15)
                memory = {s: rss_mib(stack.children[s].pid) for s in SERVICES}
                lag, queued = await lag_and_queue(stack)
                samples.append((time.monotonic() - started, memory, lag))
                shown = {s: round(v, 1) for s, v in memory.items()}
                print(f"  t={samples[-1][0]:5.0f}s rss={shown} lag={lag:.0f} queued={queued:.0f}")
            incidents.cancel()
            stop.set()
            sent = await telemetry
            statuses = await outcomes(stack, keys["operator"], load.accepted, timeout=180)
        finally:
            stack.stop()
    finally:
        broker.stop()
        pg.destroy()

    base = next((m for t, m, _ in samples if t >= warm_up_s), samples[0][1])
    first, end = samples[0][1], samples[-1][1]
    single = {s: round((end[s] - base[s]) / base[s] * 100, 1) for s in SERVICES if base[s]}
    levels = memory_growth([(t, m) for t, m, _ in samples], warm_up_s, window_s)
    growth = {s: levels[s][2] for s in SERVICES}
    overall = {s: round((end[s] - first[s]) / first[s] * 100, 1) for s in SERVICES if first[s]}
    lost = [i for i in load.accepted if statuses.get(i) not in OUTCOMES]
    peak_lag = max(lag for _, _, lag in samples)
    print(f"\nairgrid soak, {minutes:.0f} min at 10x nominal")
    print(f"  incidents accepted {len(load.accepted)}, telemetry records acknowledged {sent}")
    for service in SERVICES:
        print(
            f"  {service:<10} RSS {first[service]:6.1f} MiB at 15 s, {base[service]:6.1f} MiB "
            f"after the warm-up, {end[service]:6.1f} MiB at the end"
        )
    for service in SERVICES:
        base_level, end_level, _ = levels[service]
        print(
            f"  {service:<10} median RSS {base_level:6.1f} MiB in the {window_s:.0f} s after the "
            f"warm-up, {end_level:6.1f} MiB in the last {window_s:.0f} s"
        )
    print(f"  memory growth of the medians (%), the rule: {growth}")
    print(f"  memory growth, one sample after the warm-up to the end sample (%): {single}")
    print(f"  memory growth from the first sample (%): {overall}")
    print(f"  consumer lag: peak {peak_lag:.0f}, last {samples[-1][2]:.0f} records")
    print(f"  incidents without an outcome: {len(lost)}")
    ok = all(g <= 10 for g in growth.values()) and samples[-1][2] <= max_lag and not lost
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="airgrid soak at 10x nominal")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-lag", type=float, default=5000.0, help="records, at the end")
    parser.add_argument(
        "--warm-up", type=float, default=120.0, help="seconds before the memory baseline"
    )
    parser.add_argument(
        "--window", type=float, default=120.0, help="seconds of samples in each memory median"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.minutes, args.max_lag, args.warm_up, args.window)))


if __name__ == "__main__":
    main()
