"""End-to-end start-up shared by the suites that run the services as processes: the registry,
telemetry and dispatch services as `airgrid serve` children on the test broker and database,
ready before the first test, stopped (with anything else a suite spawned) after the last.

A suite that needs a database or topic prefix of its own overrides `e2e_settings`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.service_processes import SERVICES, ServiceFailed, ServiceProcesses
from tests.conftest import free_port


@dataclass(frozen=True)
class Keys:
    fire: str
    operator: str
    gateways: list[str]  # one per nest asked for, in that order


async def issue_keys(settings: Settings, gateway_nests: Sequence[str] = ()) -> Keys:
    """API keys: the fire department, an operator, and a gateway per nest."""
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, fire = issue_credential(session, role=Role.DEPARTMENT, department="fire")
            _, operator = issue_credential(session, role=Role.OPERATOR)
            gateways = [
                issue_credential(session, role=Role.GATEWAY, nest_id=nest)[1]
                for nest in gateway_nests
            ]
    finally:
        await engine.dispose()
    return Keys(fire, operator, gateways)


@dataclass
class ServiceStack:
    """The running services and the keys a suite calls them with."""

    settings: Settings
    urls: dict[str, str]
    fire_key: str
    operator_key: str


@dataclass
class RunningServices:
    """The services (and anything else a suite spawned) as children of the test run."""

    settings: Settings
    processes: ServiceProcesses

    @property
    def urls(self) -> dict[str, str]:
        """Service name -> base URL."""
        return {name: self.processes.url(name) for name in SERVICES}

    @property
    def children(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.processes.children

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`python -m entrypoints ARGS` as a child named `name`, logging to `<logs>/<name>.log`;
        it is stopped with the services."""
        return self.processes.spawn(name, args)

    def check_running(self, name: str) -> None:
        """An AssertionError with the tail of its log when the child `name` has exited."""
        try:
            self.processes.check(name)
        except ServiceFailed as failed:
            raise AssertionError(str(failed)) from None


def service_env(
    settings: Settings, ports: dict[str, int], extra: Mapping[str, str] = MappingProxyType({})
) -> dict[str, str]:
    """The environment of a service child: the test broker, database and topics, a fast
    outbox, the given ports, then `extra` (AIRGRID_* names)."""
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
            "AIRGRID_DATABASE_URL": settings.sqlalchemy_url,
            "AIRGRID_TOPIC_PREFIX": settings.topic_prefix,
            "AIRGRID_STATE_DIR": str(settings.state_dir),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{name.upper()}_PORT": str(port) for name, port in ports.items()},
            **extra,
        }
    )
    return env


@contextlib.asynccontextmanager
async def services_running(
    settings: Settings,
    logs: Path,
    *,
    timeout: float = 60,
    extra_env: Mapping[str, str] = MappingProxyType({}),
) -> AsyncIterator[RunningServices]:
    """The three services on free ports, ready; every child is stopped on the way out."""
    ports = {name: free_port() for name in SERVICES}
    processes = ServiceProcesses(service_env(settings, ports, extra_env), ports, logs)
    try:
        processes.start_all()
        await processes.wait_ready(timeout)
        yield RunningServices(settings, processes)
    finally:
        processes.stop()


@pytest.fixture(scope="module")
async def e2e_settings(settings: Settings) -> Settings:
    """The test database and broker, with topics of this module's own."""
    s = settings.model_copy(update={"topic_prefix": f"e{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    return s


@pytest.fixture(scope="module")
async def running_services(
    e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServices]:
    async with services_running(e2e_settings, tmp_path_factory.mktemp("e2e-logs")) as running:
        yield running
