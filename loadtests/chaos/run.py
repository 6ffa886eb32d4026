"""The fault suite (`make chaos`): the three services as processes on a private PostgreSQL and a
private embedded broker, incidents posted all along, and one fault after another:

1. SIGKILL each service's worker process, restart it;
2. stop the broker for 30 s, then start an empty one on the same port;
3. stop PostgreSQL for 10 s, then start it again.

Afterwards: every accepted incident has exactly one outcome, no drone holds two missions. Prints
the figures (accepted during faults, outcomes, time to recover) and exits non-zero on a breach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from airgrid.auth import Role, issue_credential
from airgrid.broker import EmbeddedBroker
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from loadtests.chaos.postgres import PrivatePostgres, free_port

SERVICES = ("registry", "telemetry", "dispatch")
OUTCOMES = {"queued", "assigned", "launched", "on_scene", "completed", "cancelled"}
DEPARTMENTS = ("fire", "police", "health", "traffic")


@dataclass
class Load:
    """What the incident load saw, per phase."""

    accepted: list[str] = field(default_factory=list)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    phase: str = "steady"


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str) -> None:
        self.children[service] = subprocess.Popen(
            [sys.executable, "-m", "airgrid", "serve", service],
            env=self.env,
            stdout=(self.logs / f"{service}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self, service: str) -> None:
        child = self.children[service]
        child.send_signal(signal.SIGKILL)
        child.wait()

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


class NotRecovered(RuntimeError):
    """A service did not become ready again in time; the message has its last /readyz."""


async def wait_ready(stack: Stack, service: str, timeout: float = 90) -> float:
    started = time.monotonic()
    last = "no answer"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - started < timeout:
            try:
                r = await client.get(f"{stack.url(service)}/readyz")
                if r.status_code == 200:
                    return time.monotonic() - started
                last = r.text[:400]
            except httpx.HTTPError as error:
                last = repr(error)
            await asyncio.sleep(0.25)
    raise NotRecovered(
        f"{service} not ready after {timeout:.0f} s (last /readyz: {last}); "
        f"see {stack.logs}/{service}.log"
    )


async def recovery(stack: Stack, timeout: float, failures: list[str]) -> str:
    """Seconds until every service is ready again, or why one is not."""
    try:
        return f"{max([await wait_ready(stack, s, timeout) for s in SERVICES]):.1f} s"
    except NotRecovered as error:
        failures.append(str(error))
        return "NOT RECOVERED"


async def post_incidents(stack: Stack, keys: dict[str, str], load: Load, rate: float) -> None:
    """Departments post incidents at `rate` per second until cancelled; retries on 503."""
    async with httpx.AsyncClient(base_url=stack.url("dispatch"), timeout=10) as client:
        n = 0
        while True:
            department = DEPARTMENTS[n % len(DEPARTMENTS)]
            n += 1
            body: dict[str, Any] = {
                "type": "fire" if department == "fire" else "medical_aed",
                "priority": 1 + n % 4,
                "location": {"type": "Point", "coordinates": [114.40 + (n % 7) * 0.01, 30.48]},
                "required_capabilities": [],
                "drones_needed": 1,
                "on_scene_seconds": 60,
                "description": f"chaos load {n}",
            }
            headers = {
                "Authorization": f"Bearer {keys[department]}",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            try:
                r = await client.post("/v1/incidents", json=body, headers=headers)
                load.answers[(load.phase, r.status_code)] += 1
                if r.status_code == 201:
                    load.accepted.append(r.json()["id"])
            except httpx.HTTPError:
                load.answers[(load.phase, 0)] += 1
            await asyncio.sleep(1 / rate)


async def outcomes(stack: Stack, operator: str, ids: list[str], timeout: float) -> dict[str, str]:
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=stack.url("dispatch"), timeout=10) as client:
        while time.monotonic() < deadline:
            for incident_id in ids:
                if statuses.get(incident_id) in OUTCOMES:
                    continue
                r = await client.get(
                    f"/v1/incidents/{incident_id}", headers={"Authorization": f"Bearer {operator}"}
                )
                if r.status_code == 200:
                    statuses[incident_id] = r.json()["status"]
            if all(statuses.get(i) in OUTCOMES for i in ids):
                break
            await asyncio.sleep(1)
    return statuses


async def issue_keys(settings: Settings) -> dict[str, str]:
    engine = create_engine(settings)
    keys: dict[str, str] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for department in DEPARTMENTS:
                _, keys[department] = issue_credential(
                    session, role=Role.DEPARTMENT, department=department
                )
            _, keys["operator"] = issue_credential(session, role=Role.OPERATOR)
    finally:
        await engine.dispose()
    return keys


async def drones_with_two_missions(settings: Settings) -> list[Any]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT drone_id, count(*) FROM missions WHERE stage IN "
                    "('assigned', 'launched', 'on_scene') GROUP BY drone_id HAVING count(*) > 1"
                )
            )
            return list(result.all())
    finally:
        await engine.dispose()


async def run(rate: float, broker_outage: float, database_outage: float) -> int:
    work = Path(tempfile.mkdtemp(prefix="airgrid-chaos-"))
    pg = PrivatePostgres()
    pg.init()
    broker = EmbeddedBroker(port=free_port(), log_file=work / "broker.log")
    try:
        broker.start()
        return await faults(work, pg, broker, rate, broker_outage, database_outage)
    finally:
        broker.stop()
        pg.destroy()


async def faults(
    work: Path,
    pg: PrivatePostgres,
    broker: EmbeddedBroker,
    rate: float,
    broker_outage: float,
    database_outage: float,
) -> int:
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        database_url=pg.url,
        state_dir=work / "state",
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
            "AIRGRID_DATABASE_URL": pg.url,
            "AIRGRID_TOPIC_PREFIX": "chaos.",
            "AIRGRID_STATE_DIR": str(settings.state_dir),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{n.upper()}_PORT": str(p) for n, p in ports.items()},
        }
    )
    stack = Stack(settings, env, ports, work)
    load = Load()
    figures: list[str] = []
    failures: list[str] = []
    try:
        for service in SERVICES:
            stack.start(service)
            await wait_ready(stack, service)
        loader = asyncio.create_task(post_incidents(stack, keys, load, rate))
        await asyncio.sleep(5)

        for service in SERVICES:
            load.phase = f"kill-{service}"
            stack.kill(service)
            stack.start(service)
            try:
                recovered = f"{await wait_ready(stack, service):.1f} s"
            except NotRecovered as error:
                failures.append(str(error))
                recovered = "NOT RECOVERED"
            figures.append(f"SIGKILL {service}: ready again after {recovered}")
            await asyncio.sleep(3)

        load.phase = "broker-down"
        broker.stop()
        await asyncio.sleep(broker_outage)
        broker.start()
        figures.append(
            f"broker down {broker_outage:.0f} s, empty broker back: all ready after "
            f"{await recovery(stack, 180, failures)}"
        )
        load.phase = "after-broker"
        await asyncio.sleep(5)

        load.phase = "database-down"
        pg.stop()
        await asyncio.sleep(database_outage)
        pg.start()
        figures.append(
            f"database down {database_outage:.0f} s: all ready after "
            f"{await recovery(stack, 120, failures)}"
        )
        load.phase = "after-database"
        await asyncio.sleep(5)
        loader.cancel()

        statuses = await outcomes(stack, keys["operator"], load.accepted, timeout=120)
        doubled = await drones_with_two_missions(settings)
    finally:
        stack.stop_all()

    missing = [i for i in load.accepted if statuses.get(i) not in OUTCOMES]
    phases: dict[str, Counter[int]] = {}
    for (phase, code), count in load.answers.items():
        phases.setdefault(phase, Counter())[code] += count
    print("\nairgrid fault suite")
    for line in figures:
        print("  " + line)
    for phase, codes in phases.items():
        print(f"  {phase:16} answers {dict(sorted(codes.items()))}")
    print(f"  accepted incidents: {len(load.accepted)} (ids unique: {len(set(load.accepted))})")
    print(f"  outcomes: {dict(Counter(statuses.values()))}")
    print(f"  without an outcome: {len(missing)}; drones holding two missions: {len(doubled)}")
    print(f"  logs: {work}")
    five_hundreds = sum(c for (_, code), c in load.answers.items() if code >= 500 and code != 503)
    ok = not missing and not doubled and len(set(load.accepted)) == len(load.accepted)
    ok = ok and five_hundreds == 0 and not failures
    for failure in failures:
        print("  " + failure)
    print("  PASS" if ok else f"  FAIL (5xx other than 503: {five_hundreds})")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rate", type=float, default=2.0, help="incidents per second")
    parser.add_argument("--broker-outage", type=float, default=30.0, help="seconds")
    parser.add_argument("--database-outage", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.rate, args.broker_outage, args.database_outage)))


if __name__ == "__main__":
    main()
