"""What the feed stream tests share: the telemetry app served in this process on a free port
(uvicorn, so SSE really streams), department keys, and an SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn

from airgrid.auth import Role, issue_credential
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from services.telemetry.app import build_app
from tests.conftest import free_port
from tests.eventually import until

DEADLINE_S = 60.0


@contextlib.asynccontextmanager
async def telemetry_server(settings: Settings) -> AsyncIterator[str]:
    """The telemetry service with its lifespan (views, worker, feed hub); yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        build_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), 90, "telemetry serving")
        if task.done():
            raise AssertionError(f"telemetry did not start: {task.exception()!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


async def issue_keys(settings: Settings, departments: list[str]) -> dict[str, tuple[str, str]]:
    """Department code → (credential id, key)."""
    engine = create_engine(settings)
    keys: dict[str, tuple[str, str]] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for code in departments:
                row, key = issue_credential(session, role=Role.DEPARTMENT, department=code)
                keys[code] = (row.id, key)
    finally:
        await engine.dispose()
    return keys


@dataclass
class SseEvent:
    id: str
    event: str
    data: dict[str, Any]


@dataclass
class FeedReader:
    """One SSE connection read in the background: its events, its comments, how it ended."""

    client: httpx.AsyncClient
    department: str
    key: str
    last_event_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    body: bytes = b""
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    error: str = ""

    def start(self) -> FeedReader:
        self.task = asyncio.create_task(self._read())
        return self

    async def connected(self) -> FeedReader:
        await until(
            lambda: "connected" in self.comments or self.ended.is_set(), DEADLINE_S, "stream"
        )
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            async with self.client.stream(
                "GET",
                f"/v1/feeds/{self.department}/stream",
                headers=headers,
                params=self.params,
                timeout=None,
            ) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    self.body = await response.aread()
                    return
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                    elif "data" in fields:
                        self.events.append(
                            SseEvent(
                                fields.get("id", ""),
                                fields.get("event", ""),
                                orjson.loads(fields["data"]),
                            )
                        )
                        fields = {}
        except httpx.HTTPError as error:  # the server went away: the stream ended
            self.error = repr(error)
        finally:
            self.ended.set()
