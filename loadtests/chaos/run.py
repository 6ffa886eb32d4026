"""The fault suite (`make chaos`): the three services as processes on a private PostgreSQL and a
private broker (the embedded one, or with `--broker kafka` a three-node Apache Kafka cluster),
incidents posted all along, a small fleet flying the missions it is given, chaos drones sending
telemetry, and one fault after another:

1. SIGKILL each service's process, restart it;
2. stop the broker for 30 s, then start an empty one on the same port (Kafka: stop every node,
   then start them again on their data);
3. stop PostgreSQL for 10 s, then start it again.

Real alert conditions (a drone going silent, a battery below the threshold, a drone inside a
no-fly zone) are injected in every phase. Afterwards: every accepted incident has exactly one
outcome, no drone holds two missions (in the database, and in the decisions and mission events
read back from Kafka), no slot is given twice, no 5xx but 503, and no alert lost for a real
condition (see loadtests/README.md for the rule). Prints the figures of each phase and PASS or FAIL;
exits 1 on a breach. Every wait is bounded; a service that does not recover is named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from airgrid.config import Settings
from airgrid.migrate import upgrade
from airgrid.servers.ports import free_port
from airgrid.servers.postgres import PrivatePostgres
from airgrid.service_processes import SERVICES, ServiceProcesses
from loadtests.chaos.alert_rule import KINDS
from loadtests.chaos.alert_watch import AlertWatch
from loadtests.chaos.brokers import BROKERS, ChaosBroker, chaos_broker
from loadtests.chaos.checks import (
    LogChecks,
    alerts_seen,
    double_missions,
    log_checks,
    recovery,
)
from loadtests.chaos.credentials import gateway_keys, issue_keys
from loadtests.chaos.fleet import ChaosFleet, register_fleet
from loadtests.chaos.flying_fleet import FlyingFleet, fleet_of
from loadtests.chaos.incident_load import OUTCOMES, IncidentLoad, incident_outcomes
from loadtests.chaos.report import Run, progress, report

T = TypeVar("T")

# The nests of the flying fleet: the reference drones housed there (20) fly the incident load
# (114.40-114.46, 30.48) and report through their nests' gateways.
FLYING_NESTS = ["nest-01", "nest-02", "nest-03", "nest-04", "nest-06"]


@dataclass(frozen=True)
class Timings:
    """Durations of one run; `--quick` shortens them."""

    broker_outage: float = 30.0
    database_outage: float = 10.0
    steady: float = 5.0
    after_fault: float = 5.0
    start_timeout: float = 120.0
    restart_timeout: float = 90.0
    broker_recovery_timeout: float = 180.0
    database_recovery_timeout: float = 120.0
    # Alerts of the conditions injected so far must be seen before the broker is replaced
    # (afterwards they could not be: the records are gone). Link lost takes 15 s of silence.
    alerts_before_outage_timeout: float = 60.0
    alerts_at_end_timeout: float = 90.0
    outcomes_timeout: float = 120.0


QUICK = Timings(broker_outage=10.0, database_outage=5.0, steady=3.0, after_fault=3.0)


async def bounded(awaitable: Awaitable[T], seconds: float, what: str, run: Run) -> T | None:
    """`awaitable` within `seconds`, or None with a failure naming `what`."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        run.failures.append(f"{what} did not finish within {seconds:.0f} s")
        progress(f"  {what}: gave up after {seconds:.0f} s")
        return None


def drone_count(phases_with_conditions: int) -> int:
    return phases_with_conditions * len(KINDS) + 3  # 3 never get a condition


PHASES_WITH_CONDITIONS = (
    "steady",
    *(f"kill-{s}" for s in SERVICES),
    "broker-down",
    "after-broker",
    "database-down",
    "after-database",
)


async def run(rate: float, timings: Timings, broker_kind: str = "embedded") -> int:
    work = Path(tempfile.mkdtemp(prefix="airgrid-chaos-"))
    progress(f"logs in {work}")
    # The runner's own Kafka clients complain loudly while the broker is down: to a file.
    logging.basicConfig(
        filename=work / "runner.log",
        level=logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        force=True,
    )
    pg = PrivatePostgres()
    pg.init()
    broker = chaos_broker(broker_kind, work)
    try:
        progress(f"starting the {broker.name}")
        await asyncio.to_thread(broker.start)
        return await faults(Run(work, IncidentLoad()), pg, broker, rate, timings)
    finally:
        await asyncio.to_thread(broker.close)
        pg.destroy()


async def faults(
    run: Run, pg: PrivatePostgres, broker: ChaosBroker, rate: float, timings: Timings
) -> int:
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_replication=broker.replication,
        database_url=pg.url,
        state_dir=run.work / "state",
        topic_prefix="chaos.",
        outbox_poll_seconds=0.2,
    )
    await asyncio.to_thread(upgrade, settings)
    keys = await issue_keys(settings)
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": broker.bootstrap,
            "AIRGRID_TOPIC_REPLICATION": str(broker.replication),
            "AIRGRID_DATABASE_URL": pg.url,
            "AIRGRID_TOPIC_PREFIX": "chaos.",
            "AIRGRID_STATE_DIR": str(settings.state_dir),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{n.upper()}_PORT": str(p) for n, p in ports.items()},
        }
    )
    stack = ServiceProcesses(env, ports, run.work)
    load = run.load
    watch = AlertWatch(settings)
    background: list[asyncio.Task[Any]] = []
    statuses: dict[str, str] = {}
    doubled = (0, 0)
    fleet: ChaosFleet | None = None
    flying: FlyingFleet | None = None
    logged: LogChecks | None = None
    try:
        phase = run.begin("start")
        for service in SERVICES:
            stack.start(service)
        run.recovered(phase, await stack.all_ready(timings.start_timeout), "start")
        if run.failures:
            return report(run, load, statuses, doubled, fleet, None, watch, flying, logged)
        drones = await register_fleet(
            stack.url("registry"), keys["admin"], drone_count(len(PHASES_WITH_CONDITIONS))
        )
        fleet = ChaosFleet(settings, drones)
        flying = FlyingFleet(
            settings,
            stack.url("telemetry"),
            await gateway_keys(settings, FLYING_NESTS),
            fleet_of(FLYING_NESTS),
        )
        background.append(asyncio.create_task(flying.run(), name="flying-fleet"))
        background.append(asyncio.create_task(watch.run(), name="alert-watch"))
        background.append(asyncio.create_task(fleet.run(), name="chaos-fleet"))
        background.append(
            asyncio.create_task(load.post(stack.url("dispatch"), keys, rate), name="load")
        )
        await asyncio.sleep(timings.steady)  # every drone known to the worker before any fault

        phase = run.begin("steady")
        fleet.inject_all(phase.name)
        await asyncio.sleep(timings.steady)

        for service in SERVICES:
            phase = run.begin(f"kill-{service}")
            fleet.inject_all(phase.name)
            await asyncio.sleep(1.0)
            stack.kill(service)
            stack.start(service)
            results = await recovery(stack, keys, fleet, (service,), timings.restart_timeout)
            run.recovered(phase, results, f"SIGKILL {service}")
            await asyncio.sleep(3.0)

        phase = run.begin("before-broker")
        before = await alerts_seen(watch, fleet.conditions, timings.alerts_before_outage_timeout)
        seen = len(fleet.conditions) - len(before.lost)
        phase.notes.append(f"conditions alerted before the outage: {seen}/{len(fleet.conditions)}")
        progress("  " + phase.notes[-1])

        phase = run.begin("broker-down")
        await asyncio.to_thread(broker.down)
        progress(f"  {broker.name} stopped for {timings.broker_outage:.0f} s")
        await asyncio.sleep(timings.broker_outage / 3)
        fleet.inject_all(phase.name)
        await asyncio.sleep(timings.broker_outage * 2 / 3)
        await asyncio.to_thread(broker.up)
        if broker.comes_back_empty:
            watch.reconnect()
            progress("  empty broker started on the same port")
            phase.notes.append("the Kafka checks below see only what was published after this")
        else:
            progress(f"  {broker.name} started again on its data")
        results = await recovery(stack, keys, fleet, SERVICES, timings.broker_recovery_timeout)
        run.recovered(phase, results, "the broker outage")

        phase = run.begin("after-broker")
        fleet.inject_all(phase.name)
        await asyncio.sleep(timings.after_fault)

        phase = run.begin("database-down")
        await asyncio.to_thread(pg.stop)
        progress(f"  PostgreSQL stopped for {timings.database_outage:.0f} s")
        await asyncio.sleep(timings.database_outage / 3)
        fleet.inject_all(phase.name)
        await asyncio.sleep(timings.database_outage * 2 / 3)
        await asyncio.to_thread(pg.start)
        results = await recovery(stack, keys, fleet, SERVICES, timings.database_recovery_timeout)
        run.recovered(phase, results, "the database outage")

        phase = run.begin("after-database")
        fleet.inject_all(phase.name)
        await asyncio.sleep(timings.after_fault)
        background[-1].cancel()  # the incident load

        phase = run.begin("checks")
        ids = list(load.accepted)
        progress(f"  waiting for the outcomes of {len(ids)} incidents")
        statuses = (
            await bounded(
                outcomes(stack, keys["operator"], ids, timings.outcomes_timeout),
                timings.outcomes_timeout + 30,
                "reading the outcomes",
                run,
            )
            or {}
        )
        doubled = await bounded(double_missions(settings), 30, "the mission check", run) or (0, 0)
        logged = await bounded(log_checks(settings), 120, "reading the decisions back", run)
        progress(f"  waiting for the alerts of {len(fleet.conditions)} conditions")
        verdict = await alerts_seen(watch, fleet.conditions, timings.alerts_at_end_timeout)
        phase.seconds = time.monotonic() - phase.started
        return report(run, load, statuses, doubled, fleet, verdict, watch, flying, logged)
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 15)
        stack.stop()


# -- shared with the soak (loadtests/soak.py): its stack, load and outcomes -------------------

__all__ = [
    "OUTCOMES",
    "SERVICES",
    "Load",
    "ServiceProcesses",
    "issue_keys",
    "main",
    "outcomes",
    "post_incidents",
    "wait_ready",
]

Load = IncidentLoad


class NotRecovered(RuntimeError):
    """A service did not become ready in time; the message has its last /readyz."""


async def wait_ready(stack: ServiceProcesses, service: str, timeout: float = 90) -> float:
    result = await stack.ready(service, timeout)
    if result.seconds is None:
        raise NotRecovered(
            f"{service} not ready after {timeout:.0f} s (last /readyz: {result.last}); "
            f"see {stack.logs}/{service}.log"
        )
    return result.seconds


async def post_incidents(
    stack: ServiceProcesses, keys: dict[str, str], load: Load, rate: float
) -> None:
    await load.post(stack.url("dispatch"), keys, rate)


async def outcomes(
    stack: ServiceProcesses, operator: str, ids: list[str], timeout: float
) -> dict[str, str]:
    return await incident_outcomes(stack.url("dispatch"), operator, ids, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rate", type=float, default=2.0, help="incidents per second")
    parser.add_argument("--broker-outage", type=float, help="seconds (default 30, quick 10)")
    parser.add_argument("--database-outage", type=float, help="seconds (default 10, quick 5)")
    parser.add_argument("--quick", action="store_true", help="shorter outages and pauses")
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="embedded",
        help="embedded (Tansu, back empty after its outage) or kafka (3-node Apache Kafka)",
    )
    args = parser.parse_args()
    timings = QUICK if args.quick else Timings()
    overrides: dict[str, float] = {}
    if args.broker_outage is not None:
        overrides["broker_outage"] = args.broker_outage
    if args.database_outage is not None:
        overrides["database_outage"] = args.database_outage
    if overrides:
        timings = Timings(**{**timings.__dict__, **overrides})
    sys.exit(asyncio.run(run(args.rate, timings, args.broker)))


if __name__ == "__main__":
    main()
