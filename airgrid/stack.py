"""`airgrid up`: broker, database, demo credentials, the three services and the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.table import Table

from airgrid.auth import Role, issue_credential
from airgrid.broker import EmbeddedBroker, EmbeddedBrokerError
from airgrid.bus import BrokerUnavailable, client_options, ensure_topics, topic_name
from airgrid.config import EMBEDDED_KAFKA_PORT, Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.reference import load_reference
from airgrid.topics import DEPARTMENT_CODES, DISPATCH_DECISIONS, MISSION_EVENTS
from airgrid.v1 import dispatch_pb2, mission_pb2

SERVICES = ("registry", "telemetry", "dispatch")
console = Console(stderr=False)


class StackError(RuntimeError):
    """The stack could not start; the message says what to do."""


def _die_with_parent() -> None:
    """Children get SIGTERM if `airgrid up` itself dies, so nothing is left behind."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def write_demo_credentials(settings: Settings) -> Path:
    """A key for every department, the operator, an admin and each nest's gateway."""
    reference = load_reference(settings.reference_data)
    engine = create_engine(settings)
    keys: dict[str, object] = {"department": {}, "gateway": {}}
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            for code in DEPARTMENT_CODES:
                _, key = issue_credential(
                    session, role=Role.DEPARTMENT, department=code, label=f"demo {code}"
                )
                keys["department"][code] = key  # type: ignore[index]
            _, keys["operator"] = issue_credential(session, role=Role.OPERATOR, label="demo")
            _, keys["admin"] = issue_credential(session, role=Role.ADMIN, label="demo")
            for nest in reference.nests:
                _, key = issue_credential(
                    session, role=Role.GATEWAY, nest_id=nest.id, label=f"demo {nest.id}"
                )
                keys["gateway"][nest.id] = key  # type: ignore[index]
    finally:
        await engine.dispose()
    path = settings.state_dir / "credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(keys, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return path


@dataclass
class Dashboard:
    """What `airgrid up` shows, computed from the decisions and mission events topics."""

    started: float = field(default_factory=time.monotonic)
    accepted_ms: dict[str, int] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    on_scene: set[str] = field(default_factory=set)
    completed: int = 0
    assign_seconds: list[float] = field(default_factory=list)
    scene_seconds: list[float] = field(default_factory=list)

    def on_decision(self, decision: dispatch_pb2.DispatchDecision) -> None:
        self.accepted_ms[decision.incident_id] = decision.incident_accepted_time_ms
        if decision.kind == dispatch_pb2.DECISION_KIND_ASSIGNED:
            if decision.incident_id not in self.assigned:
                self.assigned.add(decision.incident_id)
                self.assign_seconds.append(
                    (decision.decided_time_ms - decision.incident_accepted_time_ms) / 1000
                )
            self.queued.discard(decision.incident_id)
        elif decision.kind == dispatch_pb2.DECISION_KIND_QUEUED:
            if decision.incident_id not in self.assigned:
                self.queued.add(decision.incident_id)

    def on_mission(self, event: mission_pb2.MissionEvent) -> None:
        if event.stage == mission_pb2.MISSION_STAGE_ON_SCENE:
            if event.incident_id not in self.on_scene:
                self.on_scene.add(event.incident_id)
                accepted = self.accepted_ms.get(event.incident_id)
                if accepted:
                    self.scene_seconds.append((event.event_time_ms - accepted) / 1000)
        elif event.stage == mission_pb2.MISSION_STAGE_COMPLETED:
            self.completed += 1

    @staticmethod
    def _pct(values: list[float], q: float) -> str:
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.2f}s"
        return f"{statistics.quantiles(values, n=100, method='inclusive')[int(q) - 1]:.2f}s"

    def sla_share(self, sla: float) -> str:
        if not self.scene_seconds:
            return "-"
        within = sum(1 for s in self.scene_seconds if s <= sla)
        return f"{100 * within / len(self.scene_seconds):.1f}%"

    def rows(self, sim: object | None, sla: float) -> list[tuple[str, str]]:
        rows = [("uptime", f"{time.monotonic() - self.started:.0f}s")]
        if sim is not None:
            rows += [
                ("incidents posted", str(getattr(sim, "incidents_posted", 0))),
                ("incidents rejected", str(getattr(sim, "incidents_failed", 0))),
                ("telemetry records sent", str(getattr(sim, "telemetry_sent", 0))),
                ("drones airborne", str(getattr(sim, "airborne", 0))),
            ]
        rows += [
            ("incidents assigned", str(len(self.assigned))),
            ("incidents queued now", str(len(self.queued))),
            (
                "time to assign p50 / p95",
                f"{self._pct(self.assign_seconds, 50)} / {self._pct(self.assign_seconds, 95)}",
            ),
            ("drones on scene (incidents)", str(len(self.on_scene))),
            (
                "time to scene p50 / p95",
                f"{self._pct(self.scene_seconds, 50)} / {self._pct(self.scene_seconds, 95)}",
            ),
            (f"on scene within {sla:.0f}s", self.sla_share(sla)),
            ("missions completed", str(self.completed)),
        ]
        return rows

    def table(self, sim: object | None, sla: float) -> Table:
        table = Table(title="airgrid — live", show_header=False, min_width=50)
        table.add_column("what", style="cyan")
        table.add_column("value", justify="right", style="bold")
        for what, value in self.rows(sim, sla):
            table.add_row(what, value)
        return table

    def line(self, sim: object | None, sla: float) -> str:
        return " | ".join(f"{what}: {value}" for what, value in self.rows(sim, sla))


async def follow_outcomes(settings: Settings, dashboard: Dashboard) -> None:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        names = [topic_name(settings, DISPATCH_DECISIONS), topic_name(settings, MISSION_EVENTS)]
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        if tp.topic == names[0]:
                            dashboard.on_decision(
                                dispatch_pb2.DispatchDecision.FromString(record.value or b"")
                            )
                        else:
                            dashboard.on_mission(
                                mission_pb2.MissionEvent.FromString(record.value or b"")
                            )
                    except Exception:
                        continue
    finally:
        await consumer.stop()


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: EmbeddedBroker | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = settings.state_dir / "logs"

    def start_broker(self) -> None:
        if not self.settings.embedded_kafka:
            return
        self.broker = EmbeddedBroker(
            port=EMBEDDED_KAFKA_PORT, log_file=self.settings.state_dir / "logs" / "broker.log"
        )
        self.broker.start()

    def start_services(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.broker is not None:
            env["AIRGRID_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
        for name in SERVICES:
            log = (self.logs / f"{name}.log").open("ab")
            self.children[name] = subprocess.Popen(
                [sys.executable, "-m", "airgrid", "serve", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C reaches `up`, which stops them in order
            )

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(SERVICES)
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for name in sorted(pending):
                    child = self.children[name]
                    if child.poll() is not None:
                        raise StackError(
                            f"the {name} service exited with code {child.returncode}:\n"
                            + self.tail(name)
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        response = await client.get(f"{self.settings.url_of(name)}/readyz")
                        if response.status_code == 200:
                            pending.discard(name)
                if time.monotonic() > deadline:
                    raise StackError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
                await asyncio.sleep(0.3)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def _fresh_embedded_database(settings: Settings) -> None:
    if settings.database_url:
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (settings.state_dir / f"airgrid.db{suffix}").unlink()


async def _run(
    stack: Stack, settings: Settings, *, sim: bool, rate_per_min: float, seed: int, keep_data: bool
) -> None:
    say = console.print
    if not keep_data:
        _fresh_embedded_database(settings)
    if settings.embedded_kafka:
        say(f"[bold]broker[/] starting the embedded Tansu broker on {settings.bootstrap_servers}")
    stack.start_broker()
    if stack.broker is not None:
        settings = settings.model_copy(update={"kafka_bootstrap": stack.broker.bootstrap})
    say("[bold]database[/] migrating " + settings.sqlalchemy_url.split("@")[-1])
    await asyncio.to_thread(upgrade, settings)
    await ensure_topics(settings)
    path = await write_demo_credentials(settings)
    say(f"[bold]credentials[/] demo keys for every department, the operator and gateways: {path}")
    ports = ", ".join(f"{name} :{settings.port_of(name)}" for name in SERVICES)
    say(f"[bold]services[/] starting {ports}")
    stack.start_services()
    await stack.wait_ready()
    say(
        "[bold green]ready[/] — docs at "
        + ", ".join(f"{settings.url_of(s)}/docs" for s in SERVICES)
        + "; Ctrl-C stops everything"
    )
    dashboard = Dashboard()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(follow_outcomes(settings, dashboard), name="dashboard")
    ]
    stats = None
    if sim:
        from airgrid.sim.runner import SimStats, run_sim

        stats = SimStats()
        tasks.append(
            asyncio.create_task(
                run_sim(settings, rate_per_min=rate_per_min, seed=seed, stats=stats), name="sim"
            )
        )
    try:
        if sys.stdout.isatty():
            with Live(dashboard.table(stats, settings.sla_seconds), refresh_per_second=2) as live:
                while True:
                    await asyncio.sleep(0.5)
                    _check(stack, tasks)
                    live.update(dashboard.table(stats, settings.sla_seconds))
        else:
            while True:
                for _ in range(10):
                    await asyncio.sleep(0.5)
                    _check(stack, tasks)
                print(dashboard.line(stats, settings.sla_seconds), flush=True)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _check(stack: Stack, tasks: list[asyncio.Task[Any]]) -> None:
    for name, child in stack.children.items():
        if child.poll() is not None:
            raise StackError(
                f"the {name} service stopped (code {child.returncode}):\n" + stack.tail(name)
            )
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise StackError(f"{task.get_name()} failed: {task.exception()!r}")


def run_stack(
    settings: Settings, *, sim: bool, rate_per_min: float, seed: int, keep_data: bool
) -> int:
    """Runs until SIGINT or SIGTERM; returns the exit code (0 on a requested stop)."""
    stack = Stack(settings)
    loop = asyncio.new_event_loop()
    main = loop.create_task(
        _run(stack, settings, sim=sim, rate_per_min=rate_per_min, seed=seed, keep_data=keep_data)
    )
    stopping = False

    def request_stop() -> None:
        nonlocal stopping
        stopping = True
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    code = 0
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        code = 0 if stopping else 1
    except (StackError, EmbeddedBrokerError, BrokerUnavailable) as error:
        console.print(f"[bold red]airgrid:[/] {error}")
        code = 1
    finally:
        console.print("[bold]stopping[/] services, simulator and broker …")
        stack.stop()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        console.print("[bold]stopped[/]")
    return code
