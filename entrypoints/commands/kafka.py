"""`airgrid kafka`: an Apache Kafka cluster on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from entrypoints.commands.fail import fail

kafka_app = typer.Typer(help="An Apache Kafka cluster on this machine.", no_args_is_help=True)


@kafka_app.command("up")
def kafka_up(
    brokers: Annotated[int, typer.Option(min=1, help="Nodes (each broker and controller).")] = 1,
    port: Annotated[int, typer.Option(help="Client port of the first node; then +1, +2...")] = 9092,
    dir: Annotated[
        Path | None, typer.Option(help="Keep the data here (default: a temp dir removed at exit).")
    ] = None,
) -> None:
    """Run an Apache Kafka KRaft cluster (jars from Maven Central) with airgrid's topics."""
    from airgrid.servers.kafka import run_until_signal
    from airgrid.servers.kafka_jars import KafkaClusterError

    try:
        run_until_signal(brokers=brokers, port=port, data_dir=dir, echo=typer.echo)
    except KafkaClusterError as error:
        fail(str(error))


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Fetch the pinned Apache Kafka jars through Maven into the cache (quick when there)."""
    from airgrid.servers.kafka_jars import KafkaClusterError, fetch_jars

    try:
        fetch_jars()
    except KafkaClusterError as error:
        fail(str(error))
