"""End-to-end start-up shared by the suites that run the services as processes: the registry,
telemetry and dispatch services as `airgrid serve` children on the test broker and database,
ready before the first test, stopped (with anything else a suite spawned) after the last.

A suite that needs a database or topic prefix of its own overrides `e2e_settings`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from tests.conftest import free_port
from tests.eventually import eventually

SERVICES = ("registry", "telemetry", "dispatch")


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
    settings: Settings
    urls: dict[str, str]  # service name -> base URL
    env: dict[str, str]  # the environment the children run with
    logs: Path
    children: dict[str, subprocess.Popen[bytes]]

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`python -m airgrid ARGS` as a child named `name`, logging to `<logs>/<name>.log`;
        it is stopped with the services."""
        child = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *args],
            env=self.env,
            stdout=(self.logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.children[name] = child
        return child

    def check_running(self, name: str) -> None:
        """An AssertionError with the tail of its log when the child `name` has exited."""
        if self.children[name].poll() is not None:
            log = (self.logs / f"{name}.log").read_text()
            raise AssertionError(f"{name} exited:\n{log[-3000:]}")


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
    s = e2e_settings
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": s.bootstrap_servers,
            "AIRGRID_DATABASE_URL": s.sqlalchemy_url,
            "AIRGRID_TOPIC_PREFIX": s.topic_prefix,
            "AIRGRID_STATE_DIR": str(s.state_dir),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
    )
    running = RunningServices(
        settings=s,
        urls={name: f"http://127.0.0.1:{port}" for name, port in ports.items()},
        env=env,
        logs=tmp_path_factory.mktemp("e2e-logs"),
        children={},
    )
    try:
        for name in SERVICES:
            running.spawn(name, ["serve", name])
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in SERVICES:

                async def ready(name: str = name) -> bool | None:
                    running.check_running(name)
                    try:
                        r = await client.get(f"{running.urls[name]}/readyz")
                    except httpx.HTTPError:
                        return None
                    return True if r.status_code == 200 else None

                await eventually(ready, 60, f"{name} ready")
        yield running
    finally:
        for child in running.children.values():
            child.terminate()
        for child in running.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
