"""What every service shares at run time: infrastructure handles and the FastAPI app shell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.responses import Response

from airgrid.auth import Authenticator, bootstrap_admin
from airgrid.bus import Producer, ensure_topics
from airgrid.config import Settings
from airgrid.db import check_database, create_engine, session_factory
from airgrid.migrate import require_schema_at_head
from airgrid.observability import http_metrics_middleware, metrics_response
from airgrid.problems import BodySizeLimit, install_problem_handlers, problem_response

log = logging.getLogger("airgrid.service")


@dataclass
class Infrastructure:
    """Database, broker and credentials, opened once per process."""

    service: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: Producer
    authenticator: Authenticator
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, service: str, settings: Settings) -> Infrastructure:
        engine = create_engine(settings)
        await check_database(engine)
        await require_schema_at_head(engine)
        await ensure_topics(settings)
        producer = Producer(settings, source=f"airgrid/{service}")
        await producer.start()
        sessions = session_factory(engine)
        if settings.admin_key:
            await bootstrap_admin(sessions, settings.admin_key)
        return cls(service, settings, engine, sessions, producer, Authenticator(sessions))

    def spawn(self, coroutine: Awaitable[None], name: str) -> None:
        """Run a background worker for the life of the service; a crash is logged loudly."""

        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker crashed", extra={"worker": name, "service": self.service})
                raise

        self.tasks.append(asyncio.create_task(guarded(), name=name))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.producer.stop()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await check_database(self.engine, timeout=2.0)
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unreachable: {error}"
        try:
            await asyncio.wait_for(self.producer.raw.client.fetch_all_metadata(), timeout=2.0)
            checks["broker"] = "ok"
        except Exception as error:
            checks["broker"] = f"unreachable: {error!r}"
        for task in self.tasks:
            if task.done():
                checks[task.get_name()] = "stopped"
        return checks


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    service: str,
    settings: Settings,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AsyncIterator[None]],
) -> FastAPI:
    """The shell every service shares: health, readiness, metrics, problems, body limit."""
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=contextlib.asynccontextmanager(lifespan),
    )
    install_problem_handlers(app)
    app.middleware("http")(http_metrics_middleware(service))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Database and broker are reachable")
    async def readyz() -> Response:
        infra: Infrastructure | None = getattr(app.state, "infra", None)
        if infra is None:
            return problem_response(503, "Not ready", "The service is starting.", kind="not-ready")
        checks = await infra.readiness()
        if all(value == "ok" for value in checks.values()):
            return Response(
                content=f'{{"status":"ready","service":"{service}"}}',
                media_type="application/json",
            )
        return problem_response(
            503,
            "Not ready",
            "A dependency is unreachable; see checks.",
            kind="not-ready",
            headers={"Retry-After": "5"},
            checks=checks,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return metrics_response()

    return app
