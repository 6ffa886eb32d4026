"""`airgrid kafka`: an Apache Kafka cluster on this machine."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
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


def run_until_signal(
    *, brokers: int, port: int, data_dir: Path | None, echo: Callable[[str], None]
) -> None:
    """`airgrid kafka up`: start the cluster, create airgrid's topics, run until Ctrl-C."""
    from airgrid.bus import BrokerUnavailable, ensure_topics
    from airgrid.config import Settings
    from airgrid.servers.kafka import KafkaCluster
    from airgrid.servers.kafka_jars import KafkaClusterError, kafka_version

    cluster = KafkaCluster(brokers=brokers, port=port, data_dir=data_dir, say=echo)
    signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked from here on, so Ctrl-C during start-up also ends in the clean stop below.
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        started = time.monotonic()
        cluster.start()
        settings = Settings(
            kafka_bootstrap=cluster.bootstrap, topic_replication=cluster.replication
        )
        try:
            created = asyncio.run(ensure_topics(settings))
        except BrokerUnavailable as error:
            raise KafkaClusterError(str(error)) from error
        echo(
            f"Apache Kafka {kafka_version()}: {brokers} broker(s) up in "
            f"{time.monotonic() - started:.1f}s, data in {cluster.data_dir}; "
            f"{len(created)} airgrid topics created (replication {cluster.replication}, "
            f"min.insync.replicas {cluster.min_insync_replicas})"
        )
        echo(f"bootstrap: {cluster.bootstrap}")
        echo(f"use it:    export AIRGRID_KAFKA_BOOTSTRAP={cluster.bootstrap}")
        if cluster.replication > 1:
            echo(f"           export AIRGRID_TOPIC_REPLICATION={cluster.replication}")
        echo("Ctrl-C stops the cluster")
        signal.sigwait(signals)
        echo("stopping the Kafka cluster...")
    finally:
        cluster.stop()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
