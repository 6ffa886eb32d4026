"""`airgrid bench`: the benchmarks of loadtests/, each against a baseline of the same run."""

from __future__ import annotations

from typing import Annotated

import typer

from airgrid.config import get_settings
from entrypoints.commands.fail import fail

bench_app = typer.Typer(
    help="Benchmarks (code in loadtests/): each prints its figure next to a baseline "
    "measured in the same run, and the ratio.",
    no_args_is_help=True,
)

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
    from loadtests.bench_telemetry import run
    from loadtests.bench_telemetry_config import BenchConfig

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
    from loadtests.bench_dispatch import run
    from loadtests.bench_dispatch_config import BenchConfig

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
