"""The three services in-process over ASGI, on the real PostgreSQL and broker, and a key per role.

Module-scoped per test module, so each security module gets apps of its own topic prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from airgrid.auth import Role, issue_credential
from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.migrate import upgrade
from tests.conftest import _drop_database, _recreate_database

SERVICES = ("registry", "telemetry", "dispatch")
# The callers of the matrix: role, department, and whether it is bound to a nest (gateways).
CALLERS: dict[str, tuple[Role, str | None, bool]] = {
    "admin": (Role.ADMIN, None, False),
    "operator": (Role.OPERATOR, None, False),
    "fire": (Role.DEPARTMENT, "fire", False),
    "police": (Role.DEPARTMENT, "police", False),
    "gateway": (Role.GATEWAY, None, True),
}


# Lines a security test wants in the session's summary whatever its outcome (figures, seeds).
REPORT: list[str] = []


def report(line: str) -> None:
    REPORT.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in REPORT:
        terminalreporter.write_line(line)


@dataclass
class Services:
    settings: Settings
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    keys: dict[str, str]

    def auth(self, caller: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[caller]}"}


async def issue_keys(settings: Settings, nest_id: str) -> dict[str, str]:
    engine = create_engine(settings)
    keys: dict[str, str] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for caller, (role, department, nest) in CALLERS.items():
                _, keys[caller] = issue_credential(
                    session,
                    role=role,
                    department=department,
                    nest_id=nest_id if nest else None,
                    label=f"security-{caller}",
                )
    finally:
        await engine.dispose()
    return keys


def build(service: str, settings: Settings) -> FastAPI:
    module = __import__(f"services.{service}.app", fromlist=["build_app"])
    app: FastAPI = module.build_app(settings)
    return app


@pytest.fixture(scope="session")
def security_settings(settings: Settings) -> Iterator[Settings]:
    """A database of its own: generated writes (schemathesis as admin) never touch the data
    that the other suites share."""
    url = f"{settings.sqlalchemy_url}_security"
    asyncio.run(_recreate_database(url))
    s = settings.model_copy(update={"database_url": url})
    upgrade(s)
    yield s
    asyncio.run(_drop_database(url))


@pytest.fixture(scope="module")
async def services(security_settings: Settings) -> AsyncIterator[Services]:
    from airgrid.reference import load_reference

    s = security_settings.model_copy(update={"topic_prefix": f"s{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    nest_id = load_reference(s.reference_data).nests[0].id
    keys = await issue_keys(s, nest_id)
    apps = {name: build(name, s) for name in SERVICES}
    async with AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url=f"http://{name}",
                    timeout=30.0,
                )
            )
        yield Services(s, apps, clients, keys)
