"""The `airgrid` command: up, serve, sim and broker here; the groups (db, registry, topics,
kafka, bench, gateway) in entrypoints/commands/."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from airgrid.config import get_settings
from airgrid.service_processes import SERVICES
from entrypoints.commands.bench import bench_app
from entrypoints.commands.data import db_app, registry_app, topics_app
from entrypoints.commands.fail import fail
from entrypoints.commands.gateway import gateway_app
from entrypoints.commands.kafka import kafka_app

# When this command started (after the interpreter and typer loaded), for `up`'s milestones.
_STARTED_MS = int(time.time() * 1000)

app = typer.Typer(
    help="airgrid: the backend of a city's shared-drone air grid.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(topics_app, name="topics")
app.add_typer(kafka_app, name="kafka")
app.add_typer(bench_app, name="bench")
app.add_typer(gateway_app, name="gateway")

PROFILE_HELP = "Incident load profile: nominal (2/min), busy (6/min) or surge (20/min, 10x)."
FAULTS_HELP = "Injected faults (link loss, battery, nest offline, gusts): none, light or heavy."
START_HELP = (
    "The fleet at the start: docked (every drone docked and full) or mid-operation (as the "
    "last half hour of the same load leaves it: some drones heading home in the air, "
    "batteries part-charged)."
)


@app.command()
def up(
    sim: Annotated[bool, typer.Option(help="Run the simulator (drones and incidents).")] = True,
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "busy",
    rate: Annotated[
        float | None, typer.Option(help="Incidents per minute; overrides the profile's rate.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
    faults: Annotated[str, typer.Option(help=FAULTS_HELP)] = "none",
    keep_data: Annotated[
        bool, typer.Option(help="Keep the embedded SQLite data of the last run.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop by itself after this many seconds of dashboard (headless runs)."),
    ] = None,
    start: Annotated[str, typer.Option(help=START_HELP)] = "mid-operation",
) -> None:
    """Everything in one command: broker, database, the three services, the simulator and a
    live dashboard (fleet, incidents, time to scene, SLA share, coverage, throughput)."""
    from entrypoints.stack import run_stack

    _check_sim_options(profile, faults, start=start)
    code = run_stack(
        get_settings(),
        sim=sim,
        profile=profile,
        rate_per_min=rate,
        seed=seed,
        keep_data=keep_data,
        faults=faults,
        duration_s=duration,
        started_ms=_STARTED_MS,
        start_state=start,
    )
    raise typer.Exit(code)


def _check_sim_options(
    profile: str, faults: str, telemetry: str = "kafka", *, start: str = "docked"
) -> None:
    from airgrid.sim.faults import LEVELS
    from airgrid.sim.load import PROFILES
    from airgrid.sim.start_state import START_STATES

    if profile not in PROFILES:
        fail(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if faults not in LEVELS:
        fail(f"unknown fault level {faults!r}; choose one of {', '.join(LEVELS)}")
    if telemetry not in ("kafka", "http"):
        fail(f"unknown telemetry path {telemetry!r}; choose kafka or http")
    if start not in START_STATES:
        fail(f"unknown start state {start!r}; choose one of {', '.join(START_STATES)}")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="registry, telemetry or dispatch")],
    port: Annotated[int | None, typer.Option(help="Port; defaults to the service's own.")] = None,
) -> None:
    """Run one service (its REST API and its stream workers)."""
    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    import uvicorn

    from airgrid.observability import configure_logging
    from airgrid.preflight import preflight

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, service)
    problem = asyncio.run(preflight(settings))
    if problem:
        fail(problem)
    module = __import__(f"services.{service}.app", fromlist=["build_app"])
    uvicorn.run(
        module.build_app(settings),
        host=settings.host,
        port=port or settings.port_of(service),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@app.command("sim")
def sim_command(
    profile: Annotated[str, typer.Option(help=PROFILE_HELP)] = "nominal",
    rate: Annotated[
        float | None, typer.Option(help="Incidents per minute; overrides the profile's rate.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; runs are reproducible.")] = 7,
    duration: Annotated[
        float | None, typer.Option(help="Seconds of incident load (then stop, or drain).")
    ] = None,
    credentials: Annotated[
        Path | None, typer.Option(help="Credentials file (default .airgrid/credentials.json).")
    ] = None,
    faults: Annotated[str, typer.Option(help=FAULTS_HELP)] = "none",
    telemetry: Annotated[
        str, typer.Option(help="Telemetry path: kafka (airgrid.telemetry.raw) or http.")
    ] = "kafka",
    start_hour: Annotated[
        float, typer.Option(help="Local hour of day the run starts at (load follows it).")
    ] = 10.0,
    report: Annotated[
        Path | None,
        typer.Option(help="Write the SLA report (JSON) here and its plot beside it (.png)."),
    ] = None,
    embedded: Annotated[
        bool | None,
        typer.Option(
            help="With --report: start a stack of its own on free ports (default), or "
            "--no-embedded to measure the running stack."
        ),
    ] = None,
    rebalance: Annotated[
        bool, typer.Option(help="With an embedded stack: rebalance idle drones between nests.")
    ] = True,
    drain: Annotated[
        float | None,
        typer.Option(
            help="With --report: most seconds to wait for the last incidents "
            "after the load (default: the SLA plus 60 s)."
        ),
    ] = None,
    start: Annotated[
        str,
        typer.Option(help=START_HELP + " The SLA figures in docs/performance.md start docked."),
    ] = "docked",
    fast: Annotated[
        bool,
        typer.Option(
            help="The accelerated twin: dispatch core, physics and load in this process on a "
            "simulated clock (no broker, no database); --hours of load, then the drain."
        ),
    ] = False,
    hours: Annotated[
        float | None,
        typer.Option(help="With --fast: simulated hours of incident load (default 24)."),
    ] = None,
    nests_offline: Annotated[
        str,
        typer.Option(help="With --fast: nests offline all run, comma-separated (nest-07,…)."),
    ] = "",
    layout: Annotated[
        Path | None,
        typer.Option(
            help="With --fast: a JSON list of nests in the shape of nests.json that moves, adds "
            "or changes nests of the reference zone (dock-layout comparisons)."
        ),
    ] = None,
    what_if_nests: Annotated[
        bool,
        typer.Option(
            help="With --fast: run once per nest with that nest offline and list the nests "
            "whose loss costs the SLA share most."
        ),
    ] = False,
    top: Annotated[int, typer.Option(help="With --what-if-nests: nests listed.")] = 10,
) -> None:
    """Drones, nests and incident load against any running stack; with --report, one measured
    run written as JSON and PNG; with --fast, the accelerated twin on a simulated clock."""
    from airgrid.observability import configure_logging

    _check_sim_options(profile, faults, telemetry, start=start)
    settings = get_settings()
    if fast:
        if duration is not None and hours is not None:
            fail("--fast takes --hours or --duration (seconds of load), not both")
        load_s = duration if duration is not None else 3600.0 * (24.0 if hours is None else hours)
        if load_s <= 0:
            fail("--hours (or --duration) must be positive")
        configure_logging("WARNING", settings.log_format, "sim")
        settings = settings.model_copy(update={"rebalance_enabled": rebalance})
        offline = tuple(n.strip() for n in nests_offline.split(",") if n.strip())
        raise typer.Exit(
            _sim_fast(
                settings,
                profile=profile,
                rate=rate,
                seed=seed,
                load_s=load_s,
                faults=faults,
                start_hour=start_hour,
                start=start,
                drain=drain,
                offline=offline,
                layout=layout,
                report=report,
                what_if=what_if_nests,
                top=top,
            )
        )
    if what_if_nests or nests_offline or layout is not None or hours is not None:
        fail("--hours, --nests-offline, --layout and --what-if-nests go with --fast")
    if report is not None:
        from airgrid.sim.report import ReportRequest
        from entrypoints.stack import run_report

        if duration is None or duration <= 0:
            fail("--report needs --duration (seconds of incident load), e.g. --duration 600")
        configure_logging("WARNING", settings.log_format, "sim")
        request = ReportRequest(
            profile=profile,
            duration_s=float(duration or 0),
            report_path=report,
            seed=seed,
            faults=faults,
            rate_per_min=rate,
            start_hour=start_hour,
            telemetry_via=telemetry,
            max_drain_s=drain,
            start_state=start,
        )
        embedded = True if embedded is None else embedded
        if embedded:
            settings = settings.model_copy(update={"rebalance_enabled": rebalance})
        raise typer.Exit(run_report(settings, request, embedded=embedded))

    from airgrid.sim.runner import run_sim

    configure_logging(settings.log_level, settings.log_format, "sim")
    try:
        asyncio.run(
            run_sim(
                settings,
                profile=profile,
                rate_per_min=rate,
                seed=seed,
                duration_s=duration,
                credentials_path=credentials,
                faults=faults,
                telemetry_via=telemetry,
                start_hour=start_hour,
                start_state=start,
            )
        )
    except KeyboardInterrupt:
        pass


def _sim_fast(
    settings: Any,
    *,
    profile: str,
    rate: float | None,
    seed: int,
    load_s: float,
    faults: str,
    start_hour: float,
    start: str,
    drain: float | None,
    offline: tuple[str, ...],
    layout: Path | None,
    report: Path | None,
    what_if: bool,
    top: int,
) -> int:
    """`airgrid sim --fast`: one accelerated run (its report), or the nests what-if."""
    from airgrid.reference import ReferenceDataError, load_reference
    from airgrid.sim.report import headline, write_report
    from entrypoints.fast_twin.clock_loop import FastRequest, run_fast
    from entrypoints.fast_twin.report import fast_report
    from entrypoints.fast_twin.what_if import nest_losses, ranking_lines
    from entrypoints.fast_twin.world import LayoutError, nests_offline, with_layout

    try:
        reference = load_reference(settings.reference_data)
        if layout is not None:
            reference = with_layout(reference, layout)
        nests_offline(reference, offline)  # names every unknown nest before a long run
    except (ReferenceDataError, LayoutError) as error:
        fail(str(error))
    request = FastRequest(
        profile=profile,
        load_s=load_s,
        seed=seed,
        rate_per_min=rate,
        faults=faults,
        start_hour=start_hour,
        start_state=start,
        nests_offline=offline,
        max_drain_s=drain,
    )

    def say(line: str) -> None:
        typer.echo(line, err=True)

    if what_if:
        say(f"what-if: each nest offline in turn, {load_s / 3600:.2f} h of {profile}, seed {seed}")
        _, losses = nest_losses(reference, settings, request, say=say)
        for line in ranking_lines(losses, top):
            typer.echo(line)
        return 0

    def progress(simulated_s: float, wall_s: float) -> None:
        say(f"simulated {simulated_s / 3600:.0f} h of {load_s / 3600:.1f} h in {wall_s:.0f} s")

    say(f"fast twin: {load_s / 3600:.2f} h of {profile}, seed {seed}, simulated clock")
    run = run_fast(reference, settings, request, progress)
    body = fast_report(run, settings)
    if report is not None:
        png = write_report(body, report)
        say(f"report {report} and {png}")
    typer.echo(headline(body))
    say(
        f"{run.simulated_s / 3600:.2f} simulated hours in {run.wall_seconds:.0f} s "
        f"({run.cpu_seconds:.0f} s CPU), {run.steps} clock steps"
    )
    return 0


@app.command()
def broker(port: Annotated[int, typer.Option(help="Port to listen on.")] = 9092) -> None:
    """Run the embedded Kafka-compatible broker in the foreground until Ctrl-C."""
    import signal

    from airgrid.broker import EmbeddedBroker, EmbeddedBrokerError

    embedded = EmbeddedBroker(port=port)
    try:
        embedded.start()
    except EmbeddedBrokerError as error:
        fail(str(error))
    typer.echo(f"broker listening on {embedded.bootstrap}; Ctrl-C stops it")
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        embedded.stop()


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
