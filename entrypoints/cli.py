"""The `airgrid` command: up, serve, sim, db, registry, topics, broker, kafka."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from airgrid.config import get_settings

# When this command started (after the interpreter and typer loaded), for `up`'s milestones.
_STARTED_MS = int(time.time() * 1000)

app = typer.Typer(
    help="airgrid: the backend of a city's shared-drone air grid.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
registry_app = typer.Typer(help="Registry data.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(topics_app, name="topics")
kafka_app = typer.Typer(help="An Apache Kafka cluster on this machine.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
bench_app = typer.Typer(
    help="Benchmarks (code in loadtests/): each prints its figure next to a baseline "
    "measured in the same run, and the ratio.",
    no_args_is_help=True,
)
gateway_app = typer.Typer(
    help="Protocol gateways that bring real drones and nests into the air grid.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
app.add_typer(gateway_app, name="gateway")

SERVICES = ("registry", "telemetry", "dispatch")


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"airgrid: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to AIRGRID_DATABASE_URL (or embedded SQLite)."""
    from airgrid.migrate import upgrade

    settings = get_settings()
    try:
        upgrade(settings)
    except Exception as error:
        fail(f"migration failed: {error}; check AIRGRID_DATABASE_URL")
    typer.echo(f"database at head ({settings.sqlalchemy_url.split('@')[-1]})")


@registry_app.command("seed")
def registry_seed(
    data: Annotated[Path | None, typer.Option(help="Zone data directory.")] = None,
) -> None:
    """Load the reference zone (or another city's data) into the registry, idempotently."""
    from airgrid.db import create_engine, session_factory
    from airgrid.reference import load_reference
    from services.registry.seed import seed_reference

    settings = get_settings()

    async def main() -> None:
        engine = create_engine(settings)
        try:
            result = await seed_reference(
                session_factory(engine),
                load_reference(data or settings.reference_data),
                timezone=settings.zone_timezone,
            )
        finally:
            await engine.dispose()
        typer.echo(
            f"seeded: {result.departments} departments, {result.nests} nests, "
            f"{result.drones} drones, {result.geofences} geofences, "
            f"{result.inspection_plans} inspection plans, {result.scenarios} scenarios added"
        )

    asyncio.run(main())


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(help="A registry document, as `export` writes it.")],
) -> None:
    """Load another city's registry (departments, nests, drones, geofences) in one transaction:
    new entries are created, changed ones updated, each published; a bad entry changes nothing."""
    import json

    from airgrid.db import create_engine, session_factory
    from airgrid.reference import load_reference
    from services.registry.service import Actor
    from services.registry.transfer import ImportRejected, import_registry

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(f"cannot read {file}: {error}")
    settings = get_settings()

    async def main() -> str:
        engine = create_engine(settings)
        try:
            result = await import_registry(
                session_factory(engine),
                document,
                actor=Actor(f"import:{file.name}", "admin"),
                zone=load_reference(settings.reference_data).zone,
            )
        finally:
            await engine.dispose()
        return result.summary()

    try:
        summary = asyncio.run(main())
    except ImportRejected as error:
        listing = "\n  ".join(error.problems[:50])
        fail(f"{file} was not imported; nothing changed. Fix these entries:\n  {listing}")
    typer.echo(f"imported {file}: {summary}")


@registry_app.command("export")
def registry_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout if omitted.")
    ] = None,
) -> None:
    """Write the registry (without credentials) as a document that `import` reads."""
    import json

    from airgrid.db import create_engine, session_factory
    from services.registry.transfer import export_registry

    settings = get_settings()

    async def main() -> dict[str, object]:
        engine = create_engine(settings)
        try:
            async with session_factory(engine)() as session:
                return await export_registry(session)
        finally:
            await engine.dispose()

    text = json.dumps(asyncio.run(main()), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"registry written to {output}", err=True)


@topics_app.command("create")
def topics_create() -> None:
    """Create every declared topic on the broker (start-up does this too)."""
    from airgrid.bus import BrokerUnavailable, ensure_topics

    try:
        created = asyncio.run(ensure_topics(get_settings()))
    except BrokerUnavailable as error:
        fail(str(error))
    typer.echo(f"{len(created)} topics created")


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


@kafka_app.command("up")
def kafka_up(
    brokers: Annotated[int, typer.Option(min=1, help="Nodes (each broker and controller).")] = 1,
    port: Annotated[int, typer.Option(help="Client port of the first node; then +1, +2...")] = 9092,
    dir: Annotated[
        Path | None, typer.Option(help="Keep the data here (default: a temp dir removed at exit).")
    ] = None,
) -> None:
    """Run an Apache Kafka KRaft cluster (jars from Maven Central) with airgrid's topics."""
    from airgrid.servers.kafka import KafkaClusterError, run_until_signal

    try:
        run_until_signal(brokers=brokers, port=port, data_dir=dir, echo=typer.echo)
    except KafkaClusterError as error:
        fail(str(error))


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Fetch the pinned Apache Kafka jars through Maven into the cache (quick when there)."""
    from airgrid.servers.kafka import KafkaClusterError, fetch_jars

    try:
        fetch_jars()
    except KafkaClusterError as error:
        fail(str(error))


BROKER_HELP = (
    "The brokers compared: embedded (Tansu), kafka (one Apache Kafka node) or both, each "
    "started and stopped by the bench. With AIRGRID_KAFKA_BOOTSTRAP set, that broker alone "
    "('external')."
)
ROUNDS_HELP = "Interleaved rounds per broker, each a baseline then the measurement."


def _bench_brokers(broker: str, rounds: int) -> None:
    from loadtests.bench_brokers import BROKER_CHOICES

    if broker not in BROKER_CHOICES:
        fail(f"--broker must be one of {', '.join(BROKER_CHOICES)}, not {broker!r}")
    if rounds < 3:
        typer.echo(f"note: {rounds} round(s): a median of fewer than 3 rounds is not a figure")


@bench_app.command("telemetry")
def bench_telemetry(
    records: Annotated[int, typer.Option(help="Records pre-produced per round.")] = 60_000,
    drones: Annotated[int, typer.Option(help="Drones the records are spread over.")] = 1_860,
    rate: Annotated[float, typer.Option(help="Live load for latency, records/s.")] = 9_300.0,
    seconds: Annotated[float, typer.Option(help="Duration of the live load per round.")] = 15.0,
    broker: Annotated[str, typer.Option(help=BROKER_HELP)] = "both",
    rounds: Annotated[int, typer.Option(min=1, help=ROUNDS_HELP)] = 3,
) -> None:
    """Bare aiokafka consume+decode versus the full telemetry pipeline, then latency at load
    against the broker hop, on each broker."""
    from loadtests.bench_telemetry import BenchConfig, run

    _bench_brokers(broker, rounds)
    cfg = BenchConfig(
        records=records,
        drones=drones,
        rate=rate,
        seconds=seconds,
        brokers=broker,
        rounds=rounds,
    )
    run(cfg, get_settings(), typer.echo)


GATEWAY_KEY_HELP = (
    "Gateway credential (POST /v1/credentials role=gateway); env AIRGRID_GATEWAY_KEY."
)


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        fail(f"{what} {value!r} must be HOST:PORT, e.g. 127.0.0.1:14550")
    return host, int(port)


def _run_gateway(main: Coroutine[Any, Any, None]) -> None:
    from airgrid.bus import BrokerUnavailable
    from gateways.airgrid_link import GatewayRefused

    try:
        asyncio.run(main)
    except (GatewayRefused, BrokerUnavailable) as error:
        fail(str(error))
    except KeyboardInterrupt:
        pass


@gateway_app.command("mavlink")
def gateway_mavlink(
    key: Annotated[str, typer.Option(envvar="AIRGRID_GATEWAY_KEY", help=GATEWAY_KEY_HELP)],
    system: Annotated[
        list[str],
        typer.Option(
            envvar="AIRGRID_MAVLINK_SYSTEMS",
            help="SYSTEM_ID=DRONE_ID, once per vehicle (env: space-separated).",
        ),
    ],
    listen: Annotated[
        str, typer.Option(envvar="AIRGRID_MAVLINK_LISTEN", help="UDP HOST:PORT to listen on.")
    ] = "0.0.0.0:14550",
    metrics_port: Annotated[
        int, typer.Option(envvar="AIRGRID_GATEWAY_METRICS_PORT", help="/metrics port; 0: off.")
    ] = 9108,
    buffer: Annotated[
        int, typer.Option(help="Telemetry records buffered through outages.")
    ] = 20_000,
) -> None:
    """MAVLink 2 drones over UDP into the air grid; commands back as MAVLink."""
    from airgrid.observability import configure_logging
    from airgrid.tracing import configure_tracing
    from gateways.app import GatewayOptions, parse_pairs, run_mavlink

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, "gateway-mavlink")
    configure_tracing(settings, "gateway-mavlink")
    try:
        pairs = parse_pairs(system, "--system")
        systems = {int(sid): drone for sid, drone in pairs.items()}
    except ValueError as error:
        fail(f"{error}; use --system 1=drone-001 (system ids are numbers 1-255)")
    options = GatewayOptions(key=key, metrics_port=metrics_port, buffer_records=buffer)
    address = _host_port(listen, "--listen")
    _run_gateway(run_mavlink(settings, options, listen=address, systems=systems))


@gateway_app.command("mqtt")
def gateway_mqtt(
    key: Annotated[str, typer.Option(envvar="AIRGRID_GATEWAY_KEY", help=GATEWAY_KEY_HELP)],
    dock: Annotated[list[str], typer.Option(help="DOCK_SN=NEST_ID, once per dock.")],
    aircraft: Annotated[
        list[str] | None,
        typer.Option(help="AIRCRAFT_SN=DRONE_ID; unmapped serials are taken as drone ids."),
    ] = None,
    broker: Annotated[
        str, typer.Option(envvar="AIRGRID_MQTT_BROKER", help="MQTT broker HOST:PORT.")
    ] = "127.0.0.1:1883",
    topic_prefix: Annotated[
        str, typer.Option(envvar="AIRGRID_MQTT_TOPIC_PREFIX", help="Before thing/product/...")
    ] = "",
    metrics_port: Annotated[
        int, typer.Option(envvar="AIRGRID_GATEWAY_METRICS_PORT", help="/metrics port; 0: off.")
    ] = 9109,
    buffer: Annotated[
        int, typer.Option(help="Telemetry records buffered through outages.")
    ] = 20_000,
) -> None:
    """DJI-Cloud-API-style docks and aircraft over MQTT into the air grid; commands back as
    `services` requests."""
    from airgrid.observability import configure_logging
    from airgrid.tracing import configure_tracing
    from gateways.app import GatewayOptions, parse_pairs, run_mqtt

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, "gateway-mqtt")
    configure_tracing(settings, "gateway-mqtt")
    try:
        docks = parse_pairs(dock, "--dock")
        crafts = parse_pairs(aircraft or [], "--aircraft")
    except ValueError as error:
        fail(f"{error}; use --dock DOCK_SN=nest-01 --aircraft AIRCRAFT_SN=drone-001")
    options = GatewayOptions(key=key, metrics_port=metrics_port, buffer_records=buffer)
    address = _host_port(broker, "--broker")
    _run_gateway(
        run_mqtt(
            settings,
            options,
            broker=address,
            docks=docks,
            aircraft=crafts,
            topic_prefix=topic_prefix,
        )
    )


@gateway_app.command("simulate")
def gateway_simulate(
    protocol: Annotated[str, typer.Argument(help="mavlink or mqtt")],
    nest: Annotated[list[str], typer.Option(help="Simulate the drones of this nest (repeat).")],
    target: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the MAVLink gateway or of the MQTT broker."),
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="MQTT topic prefix.")] = "",
    time_scale: Annotated[float, typer.Option(help="Physics speed-up (1 = real time).")] = 1.0,
) -> None:
    """The twin's drones speaking MAVLink or the DJI Cloud API, for a demo through a gateway."""
    from gateways.simulated_fleet import drones_of, run_simulated

    if protocol not in ("mavlink", "mqtt"):
        fail(f"unknown protocol {protocol!r}; choose mavlink or mqtt")
    default = "127.0.0.1:14550" if protocol == "mavlink" else "127.0.0.1:1883"
    address = _host_port(target or default, "--target")
    try:
        drones = drones_of(nest, get_settings().reference_data)
    except ValueError as error:
        fail(str(error))
    if not drones:
        fail("those nests have no drones")
    try:
        asyncio.run(
            run_simulated(
                protocol,
                drones,
                target=address,
                topic_prefix=topic_prefix,
                time_scale=time_scale,
                echo=typer.echo,
            )
        )
    except KeyboardInterrupt:
        pass


@bench_app.command("dispatch")
def bench_dispatch(
    seconds: Annotated[float, typer.Option(help="Seconds of load per rate in (a).")] = 3.0,
    queries: Annotated[int, typer.Option(help="Identical queries for core and peers.")] = 300,
    posts: Annotated[int, typer.Option(help="Incidents posted per round in (c).")] = 60,
    big_fleet: Annotated[int, typer.Option(help="The large fleet size.")] = 10_000,
    broker: Annotated[str, typer.Option(help=BROKER_HELP)] = "both",
    rounds: Annotated[int, typer.Option(min=1, help=ROUNDS_HELP)] = 3,
) -> None:
    """Dispatch: decision latency, core vs Redis GEOSEARCH / PostGIS KNN, POST -> decision
    against the broker hop on each broker."""
    from loadtests.bench_dispatch import BenchConfig, run

    _bench_brokers(broker, rounds)
    cfg = BenchConfig(
        seconds=seconds,
        queries=queries,
        posts=posts,
        fleets=(186, big_fleet),
        brokers=broker,
        rounds=rounds,
    )
    run(cfg, get_settings(), typer.echo)


@bench_app.command("gateways")
def bench_gateways(
    frames: Annotated[int, typer.Option(help="MAVLink datagrams decoded per run.")] = 50_000,
    payloads: Annotated[int, typer.Option(help="MQTT OSD payloads decoded per run.")] = 50_000,
    vehicles: Annotated[
        int, typer.Option(help="Simulated vehicles the input is spread over.")
    ] = 50,
) -> None:
    """Each gateway's ingest path versus its bare decode loop (pymavlink parse; json.loads)."""
    from loadtests.bench_gateways import BenchConfig, run

    run(BenchConfig(frames=frames, payloads=payloads, vehicles=vehicles), typer.echo)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
