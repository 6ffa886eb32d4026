"""`airgrid up` and the report's embedded stack: broker, database, demo credentials, the three
services, the simulator and the live dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.live import Live

from airgrid.auth import Role, issue_credential
from airgrid.broker import EmbeddedBroker, EmbeddedBrokerError
from airgrid.bus import BrokerUnavailable, ensure_topics
from airgrid.config import EMBEDDED_KAFKA_PORT, Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from airgrid.operator_map import where_line
from airgrid.reference import load_reference
from airgrid.service_processes import SERVICES, ServiceFailed, ServiceProcesses
from airgrid.sim.outcomes import follow_outcomes
from airgrid.sim.report import (
    ReportRequest,
    headline,
    measure,
    operator_key,
    poll_coverage,
    write_report,
)
from airgrid.sim.runner import run_sim
from airgrid.sim.sim_stats import SimStats
from airgrid.sim.start_state import MID_OPERATION
from airgrid.topics import DEPARTMENT_CODES
from entrypoints.dashboard import Dashboard, Milestones, now_ms, poll_freshness

console = Console(stderr=False)


class StackError(RuntimeError):
    """The stack could not start; the message says what to do."""


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


# The department whose key posts the incidents that inspection cases escalate to (each is
# shared with the case's owner departments): emergency management coordinates them all.
ESCALATING_DEPARTMENT = "emergency"


async def with_escalation_key(settings: Settings) -> Settings:
    """The settings with telemetry's case escalation pointed at this stack's dispatch and a
    department key issued for it, unless both were configured already. Before the services
    start: telemetry reads them once, at start."""
    if settings.dispatch_url and settings.dispatch_key:
        return settings
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, key = issue_credential(
                session,
                role=Role.DEPARTMENT,
                department=ESCALATING_DEPARTMENT,
                label="telemetry case escalations",
            )
    finally:
        await engine.dispose()
    return settings.model_copy(
        update={"dispatch_url": settings.url_of("dispatch"), "dispatch_key": key}
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child service see the same settings."""
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "AIRGRID_TOPIC_PREFIX": settings.topic_prefix,
            "AIRGRID_STATE_DIR": str(settings.state_dir),
            "AIRGRID_REBALANCE_ENABLED": "true" if settings.rebalance_enabled else "false",
            **{f"AIRGRID_{n.upper()}_PORT": str(settings.port_of(n)) for n in SERVICES},
        }
    )
    if settings.dispatch_url and settings.dispatch_key:
        env["AIRGRID_DISPATCH_URL"] = settings.dispatch_url
        env["AIRGRID_DISPATCH_KEY"] = settings.dispatch_key
    if settings.database_url:
        env["AIRGRID_DATABASE_URL"] = settings.database_url
    else:
        env.pop("AIRGRID_DATABASE_URL", None)
    return env


class Stack:
    """The embedded broker (when no AIRGRID_KAFKA_BOOTSTRAP is set) and the three services as
    child processes, on the ports of `settings`."""

    def __init__(self, settings: Settings, *, broker_port: int = EMBEDDED_KAFKA_PORT) -> None:
        self.settings = settings
        self.broker_port = broker_port
        self.broker: EmbeddedBroker | None = None
        self.services = ServiceProcesses(
            env={},
            ports={name: settings.port_of(name) for name in SERVICES},
            logs=settings.state_dir / "logs",
            detached=True,
        )

    @property
    def children(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.services.children

    def start_broker(self) -> None:
        if not self.settings.embedded_kafka:
            return
        self.broker = EmbeddedBroker(
            port=self.broker_port, log_file=self.settings.state_dir / "logs" / "broker.log"
        )
        self.broker.start()

    def start_services(self, settings: Settings) -> None:
        self.services.env = child_env(settings)
        self.services.ports = {name: settings.port_of(name) for name in SERVICES}
        self.services.start_all()

    async def wait_ready(self, timeout: float = 90.0) -> None:
        await self.services.wait_ready(timeout)

    def check(self) -> None:
        self.services.check()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to every child; one that has not exited after `grace_s` is killed."""
        self.services.stop(grace_s)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def _fresh_embedded_database(settings: Settings) -> None:
    if settings.database_url:
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (settings.state_dir / f"airgrid.db{suffix}").unlink()


async def bring_up(
    stack: Stack, settings: Settings, *, keep_data: bool, say: Callable[[str], None]
) -> Settings:
    """Broker, schema, topics, demo credentials and the services, ready; returns the settings
    the stack runs with (the embedded broker's address filled in).

    Steps that do not depend on each other overlap: the broker starts while the schema
    migrates, and the demo credentials are written while the services start."""
    began = time.monotonic()

    def took() -> str:
        return f"[dim](+{time.monotonic() - began:.1f} s)[/]"

    if not keep_data:
        _fresh_embedded_database(settings)
    if settings.embedded_kafka:
        say(f"[bold]broker[/] starting the embedded Tansu broker on port {stack.broker_port}")
    say("[bold]database[/] migrating " + settings.sqlalchemy_url.split("@")[-1])
    await asyncio.gather(
        asyncio.to_thread(stack.start_broker), asyncio.to_thread(upgrade, settings)
    )
    if stack.broker is not None:
        settings = settings.model_copy(update={"kafka_bootstrap": stack.broker.bootstrap})
    await ensure_topics(settings)
    settings = await with_escalation_key(settings)
    say(f"[bold]topics[/] and schema ready {took()}")
    ports = ", ".join(f"{name} :{settings.port_of(name)}" for name in SERVICES)
    say(f"[bold]services[/] starting {ports}")
    stack.start_services(settings)
    path, _ = await asyncio.gather(write_demo_credentials(settings), stack.wait_ready())
    say(f"[bold]credentials[/] demo keys for every department, the operator and gateways: {path}")
    say(f"[bold]services[/] ready {took()}")
    say(where_line(settings.sqlalchemy_url))
    return settings


async def _run(
    stack: Stack,
    settings: Settings,
    *,
    sim: bool,
    profile: str,
    rate_per_min: float | None,
    seed: int,
    keep_data: bool,
    faults: str,
    duration_s: float | None = None,
    started_ms: int | None = None,
    start_state: str = MID_OPERATION,
) -> None:
    started_ms = started_ms or now_ms()
    milestones = Milestones(started_ms)
    settings = await bring_up(stack, settings, keep_data=keep_data, say=console.print)
    console.print(milestones.reach("stack ready", now_ms()) or "")
    console.print(
        "[bold green]ready[/] — docs at "
        + ", ".join(f"{settings.url_of(s)}/docs" for s in SERVICES)
        + "; Ctrl-C stops everything"
    )
    dashboard = Dashboard(settings.sla_seconds, started=time.monotonic() - (
        now_ms() - started_ms) / 1000)  # fmt: skip
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(follow_outcomes(settings, dashboard.outcomes), name="dashboard"),
        asyncio.create_task(
            poll_coverage(settings, dashboard.coverage, key=operator_key(settings)),
            name="coverage",
        ),
        asyncio.create_task(
            poll_freshness(settings, dashboard, key=operator_key(settings)), name="freshness"
        ),
    ]
    stats = None
    if sim:
        stats = SimStats()
        tasks.append(
            asyncio.create_task(
                run_sim(
                    settings,
                    profile=profile,
                    rate_per_min=rate_per_min,
                    seed=seed,
                    stats=stats,
                    faults=faults,
                    outcomes=dashboard.outcomes,
                    start_state=start_state,
                ),
                name="sim",
            )
        )
    ends = None if duration_s is None else time.monotonic() + duration_s
    try:
        if sys.stdout.isatty():
            with Live(dashboard.render(stats), refresh_per_second=2) as live:
                while ends is None or time.monotonic() < ends:
                    await asyncio.sleep(0.5)
                    _check(stack, tasks)
                    for line in _milestone_lines(milestones, dashboard):
                        live.console.print(line)
                    live.update(dashboard.render(stats))
        else:
            while ends is None or time.monotonic() < ends:
                for _ in range(10):
                    await asyncio.sleep(0.5)
                    _check(stack, tasks)
                    for line in _milestone_lines(milestones, dashboard):
                        print(line, flush=True)
                print(dashboard.line(stats), flush=True)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _milestone_lines(milestones: Milestones, dashboard: Dashboard) -> list[str]:
    return milestones.from_outcomes(dashboard.outcomes) + milestones.from_dashboard(
        dashboard, now_ms()
    )


def _check(stack: Stack, tasks: list[asyncio.Task[Any]]) -> None:
    stack.check()
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise StackError(f"{task.get_name()} failed: {task.exception()!r}")


def _run_until_stopped(stack: Stack, main: Coroutine[Any, Any, Any]) -> int:
    """Runs main until it ends, SIGINT or SIGTERM; returns the exit code (0 on a requested
    stop); the stack is always stopped."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    stopping = False

    def request_stop() -> None:
        nonlocal stopping
        stopping = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    code = 0
    try:
        result = loop.run_until_complete(task)
        code = result if isinstance(result, int) else 0
    except asyncio.CancelledError:
        code = 0 if stopping else 1
    except (StackError, ServiceFailed, EmbeddedBrokerError, BrokerUnavailable) as error:
        console.print(f"[bold red]airgrid:[/] {error}")
        code = 1
    finally:
        console.print("[bold]stopping[/] services, simulator and broker …")
        stack.stop()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        console.print("[bold]stopped[/]")
    return code


def run_stack(
    settings: Settings,
    *,
    sim: bool,
    profile: str = "busy",
    rate_per_min: float | None = None,
    seed: int = 7,
    keep_data: bool = False,
    faults: str = "none",
    duration_s: float | None = None,
    started_ms: int | None = None,
    start_state: str = MID_OPERATION,
) -> int:
    """`airgrid up`: runs until SIGINT or SIGTERM (or for duration_s seconds); returns the
    exit code. started_ms: when the command started, for the start-up milestones;
    start_state: the twin's fleet at the start (mid-operation by default, see
    airgrid.sim.start_state)."""
    stack = Stack(settings, broker_port=settings.embedded_kafka_port)
    main = _run(
        stack,
        settings,
        sim=sim,
        profile=profile,
        rate_per_min=rate_per_min,
        seed=seed,
        keep_data=keep_data,
        faults=faults,
        duration_s=duration_s,
        started_ms=started_ms,
        start_state=start_state,
    )
    return _run_until_stopped(stack, main)


def report_settings(settings: Settings, *, run_dir: Path) -> Settings:
    """Settings for a report's own embedded stack: free ports and its own state directory
    (embedded SQLite unless AIRGRID_DATABASE_URL is set), so it never meets `airgrid up`."""
    return settings.model_copy(
        update={
            "state_dir": run_dir,
            "registry_port": free_port(),
            "telemetry_port": free_port(),
            "dispatch_port": free_port(),
        }
    )


def run_report(settings: Settings, request: ReportRequest, *, embedded: bool) -> int:
    """`airgrid sim --report`: measure one run and write the JSON and the PNG.

    embedded: start a stack of its own first (broker on a free port unless
    AIRGRID_KAFKA_BOOTSTRAP is set, services on free ports); otherwise run against the stack
    that the settings point at, with the credentials of `airgrid up`.
    """
    if embedded:
        mode = "rebalance" if settings.rebalance_enabled else "static"
        run_dir = (
            settings.state_dir
            / "reports"
            / f"{request.profile}-{request.seed}-{mode}-{os.getpid()}"
        )
        settings = report_settings(settings, run_dir=run_dir)
    stack = Stack(settings, broker_port=free_port())

    async def main() -> int:
        effective = settings
        if embedded:
            effective = await bring_up(stack, settings, keep_data=False, say=console.print)
        report = await measure(effective, request, say=console.print)
        stack.check()
        png = write_report(report, request.report_path)
        console.print(f"[bold green]report[/] {request.report_path} and {png}")
        console.print(headline(report))
        return 0

    return _run_until_stopped(stack, main())
