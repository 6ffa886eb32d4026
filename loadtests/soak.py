"""Soak: the stack on a private PostgreSQL and broker at 10x nominal load for a while.

    python -m loadtests.soak --minutes 10

Load: incidents at 10x the simulator's 30/min (5 per second) and docked telemetry from the
whole fleet at 10x nominal (5 Hz instead of 0.5 Hz). Samples each service's resident memory and
the consumer lag (airgrid_consumer_lag_records); at the end checks that every accepted incident
has an outcome. Passes when memory grew <= 10 % from its level after the warm-up (--warm-up,
2 minutes by default: connection pools, client buffers and the topic views fill once) to the
end, the lag stayed bounded (its last sample below --max-lag), and nothing was lost. The growth
from the first sample (at 15 s) is printed too, for the whole picture."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

from airgrid.broker import EmbeddedBroker
from airgrid.config import Settings
from airgrid.migrate import upgrade
from loadtests.chaos.postgres import PrivatePostgres, free_port
from loadtests.chaos.run import (
    OUTCOMES,
    SERVICES,
    Load,
    Stack,
    issue_keys,
    outcomes,
    post_incidents,
    wait_ready,
)
from loadtests.telemetry_generator import generate

LAG = re.compile(r"^airgrid_consumer_lag_records\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def total_lag(stack: Stack) -> float:
    lag = 0.0
    async with httpx.AsyncClient(timeout=5) as client:
        for service in SERVICES:
            try:
                text = (await client.get(f"{stack.url(service)}/metrics")).text
            except httpx.HTTPError:
                continue
            lag += sum(float(v) for v in LAG.findall(text))
    return lag


async def soak(minutes: float, max_lag: float, warm_up_s: float = 120.0) -> int:
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
        stack = Stack(settings, env, ports, work)
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
                samples.append((time.monotonic() - started, memory, await total_lag(stack)))
                print(f"  t={samples[-1][0]:5.0f}s rss={memory} lag={samples[-1][2]:.0f}")
            incidents.cancel()
            stop.set()
            sent = await telemetry
            statuses = await outcomes(stack, keys["operator"], load.accepted, timeout=180)
        finally:
            stack.stop_all()
    finally:
        broker.stop()
        pg.destroy()

    base = next((m for t, m, _ in samples if t >= warm_up_s), samples[0][1])
    first, end = samples[0][1], samples[-1][1]
    growth = {s: round((end[s] - base[s]) / base[s] * 100, 1) for s in SERVICES if base[s]}
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
    print(f"  memory growth after the {warm_up_s:.0f} s warm-up (%): {growth}")
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
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.minutes, args.max_lag, args.warm_up)))


if __name__ == "__main__":
    main()
