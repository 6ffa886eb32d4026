"""Apache Kafka clusters for tests: one node or three, each started once per session.

Import the fixtures into a test module (`kafka_one = kafka_fixtures.kafka_one`) or into a
conftest. Every cluster is stopped at the end of the session, also when a test failed; its
data and logs stay under pytest's temporary folder for a look afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airgrid.config import Settings
from airgrid.servers.kafka import KafkaCluster


def _cluster(brokers: int, data_dir: Path) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(brokers=brokers, data_dir=data_dir)
    cluster.start(timeout=180)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A one-node Apache Kafka cluster (replication 1)."""
    yield from _cluster(1, tmp_path_factory.mktemp("kafka-one"))


@pytest.fixture(scope="session")
def kafka_three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A three-node Apache Kafka cluster (replication 3, min.insync.replicas 2)."""
    yield from _cluster(3, tmp_path_factory.mktemp("kafka-three"))


def kafka_settings(cluster: KafkaCluster, **updates: Any) -> Settings:
    """Settings that point airgrid at `cluster`, with topics of their own (a fresh prefix)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": cluster.bootstrap,
        "topic_replication": cluster.replication,
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
        "log_format": "console",
    }
    values.update(updates)
    return Settings(**values)
