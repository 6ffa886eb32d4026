"""Test infrastructure: a real PostgreSQL database and a real Kafka-compatible broker.

The broker is a one-node Apache Kafka cluster of this session's own (KRaft, free ports, jars
from the project's Maven cache), or the embedded Tansu broker with AIRGRID_TEST_BROKER=embedded;
AIRGRID_KAFKA_BOOTSTRAP names a running one instead. The database is a private PostgreSQL
cluster of this session's own (initdb into a temp dir, a free port), stopped and removed at the
end; AIRGRID_TEST_DATABASE_URL points the suite at an existing server instead, where that
database is recreated and dropped afterwards. Each session uses a topic prefix of its own, so
runs never see each other.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from airgrid.broker import EmbeddedBroker
from airgrid.config import Settings
from airgrid.migrate import upgrade
from airgrid.servers.kafka import KafkaCluster
from airgrid.servers.kafka_jars import KafkaClusterError
from airgrid.servers.mosquitto import MosquittoUnavailable, PrivateMosquitto
from airgrid.servers.ports import free_port
from airgrid.servers.postgres import PostgresUnavailable, PrivatePostgres

__all__ = ["free_port"]


async def _recreate_database(url: str, *, create: bool = True) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port,
        user=parsed.username or "postgres",
        password=parsed.password,
        database="postgres",
    )
    try:
        name = parsed.database
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("AIRGRID_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    kind = os.environ.get("AIRGRID_TEST_BROKER", "kafka")
    if kind == "embedded":
        broker = EmbeddedBroker(port=free_port(), log_file=Path(".airgrid/logs/test-broker.log"))
        broker.start()
        try:
            yield broker.bootstrap
        finally:
            broker.stop()
        return
    if kind != "kafka":
        pytest.fail(f"AIRGRID_TEST_BROKER={kind!r}: use kafka or embedded", pytrace=False)
    try:
        cluster = KafkaCluster(brokers=1, data_dir=tmp_path_factory.mktemp("kafka"))
        cluster.start(timeout=180)
    except KafkaClusterError as error:
        pytest.fail(f"the test's Apache Kafka did not start: {error}", pytrace=False)
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop()


async def _drop_database(url: str) -> None:
    await _recreate_database(url, create=False)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    explicit = os.environ.get("AIRGRID_TEST_DATABASE_URL")
    if explicit:
        asyncio.run(_recreate_database(explicit))
        yield explicit
        asyncio.run(_drop_database(explicit))
        return
    try:
        server = PrivatePostgres(database="airgrid_test").__enter__()
    except (PostgresUnavailable, subprocess.CalledProcessError) as error:
        pytest.fail(f"the private PostgreSQL did not start: {error}", pytrace=False)
    try:
        yield server.url
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def settings(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings for integration tests: real broker, real migrated PostgreSQL."""
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        state_dir=tmp_path_factory.mktemp("state"),
        outbox_poll_seconds=0.2,
        log_format="console",
    )
    upgrade(s)
    return s


@pytest.fixture
async def fresh_prefix(settings: Settings) -> AsyncIterator[Settings]:
    """The same database and broker, with topics of this test's own."""
    yield settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}."})


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[tuple[str, int]]:
    """(host, port) of an MQTT broker: a private Mosquitto on a free port, or the one that
    AIRGRID_TEST_MQTT (host:port) names."""
    explicit = os.environ.get("AIRGRID_TEST_MQTT")
    if explicit:
        host, _, port = explicit.rpartition(":")
        yield host, int(port)
        return
    try:
        broker = PrivateMosquitto().__enter__()
    except MosquittoUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield broker.host, broker.port
    finally:
        broker.__exit__(None, None, None)
