"""Test infrastructure: a real PostgreSQL database and a real Kafka-compatible broker.

The broker is the embedded Tansu binary on a free port unless AIRGRID_KAFKA_BOOTSTRAP names
one. The database is recreated at AIRGRID_TEST_DATABASE_URL, by default airgrid_test_<pid> on
the local PostgreSQL, dropped afterwards, so parallel sessions never share one. Each session
uses a topic prefix of its own, so runs never see each other.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from airgrid.broker import EmbeddedBroker
from airgrid.config import Settings
from airgrid.migrate import upgrade

DEFAULT_TEST_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/airgrid_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _recreate_database(url: str, *, create: bool = True) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
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
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("AIRGRID_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedBroker(port=free_port(), log_file=Path(".airgrid/logs/test-broker.log"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


async def _drop_database(url: str) -> None:
    await _recreate_database(url, create=False)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    explicit = os.environ.get("AIRGRID_TEST_DATABASE_URL")
    url = explicit or f"{DEFAULT_TEST_DB}_{os.getpid()}"
    asyncio.run(_recreate_database(url))
    yield url
    if not explicit:
        asyncio.run(_drop_database(url))


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
