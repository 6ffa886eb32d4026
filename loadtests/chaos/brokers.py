"""The broker of a fault run and its outage: the embedded broker (`--broker embedded`), which
comes back empty on the same port, or a three-node Apache Kafka cluster (`--broker kafka`),
whose nodes all stop and come back on their ports and their data."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from airgrid.broker import EmbeddedBroker
from airgrid.servers.kafka import KafkaCluster
from airgrid.servers.ports import free_port

BROKERS = ("embedded", "kafka")


class ChaosBroker(Protocol):
    bootstrap: str
    replication: int
    # The broker comes back without the records written before the outage.
    comes_back_empty: bool
    name: str

    def start(self) -> None: ...
    def down(self) -> None: ...
    def up(self) -> None: ...
    def close(self) -> None: ...


class EmbeddedChaosBroker:
    comes_back_empty = True
    replication = 1
    name = "embedded broker"

    def __init__(self, work: Path) -> None:
        self.broker = EmbeddedBroker(port=free_port(), log_file=work / "broker.log")
        self.bootstrap = self.broker.bootstrap

    def start(self) -> None:
        self.broker.start()

    def down(self) -> None:
        self.broker.stop()

    def up(self) -> None:
        self.broker.start()

    def close(self) -> None:
        self.broker.stop()


class KafkaChaosBroker:
    comes_back_empty = False
    name = "3-node Apache Kafka"

    def __init__(self, work: Path) -> None:
        self.cluster = KafkaCluster(brokers=3, data_dir=work / "kafka")
        self.replication = self.cluster.replication
        self.bootstrap = ""

    def start(self) -> None:
        self.cluster.start(timeout=180)
        self.bootstrap = self.cluster.bootstrap

    def down(self) -> None:
        """Every node stops (a controlled shutdown, one after the other)."""
        for node_id in sorted(self.cluster.nodes):
            self.cluster.stop_node(node_id)

    def up(self) -> None:
        self.cluster.start_nodes(timeout=180)

    def close(self) -> None:
        self.cluster.stop()


def chaos_broker(kind: str, work: Path) -> ChaosBroker:
    if kind == "kafka":
        return KafkaChaosBroker(work)
    return EmbeddedChaosBroker(work)
