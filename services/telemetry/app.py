"""Telemetry composition root: the REST API, the registry and state views, the stream worker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from airgrid.config import Settings, get_settings
from airgrid.service_app import Infrastructure, create_service_app
from services.telemetry.api import router
from services.telemetry.stream import TelemetryWorker, registry_view, state_view


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = await Infrastructure.open("telemetry", settings)
        app.state.infra = infra
        app.state.authenticator = infra.authenticator

        def on_registry_change(_key: str, change: Any) -> None:
            if change is not None and change.HasField("credential_revoked"):
                infra.authenticator.forget(change.credential_revoked.credential_id)

        registry = registry_view(settings, on_update=on_registry_change)
        states = state_view(settings)
        app.state.registry = registry
        app.state.states = states
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(infra.close)
            await registry.start()
            stack.push_async_callback(registry.stop)
            await states.start()
            stack.push_async_callback(states.stop)
            worker = TelemetryWorker(
                settings=settings, producer=infra.producer, registry=registry, states=states
            )
            app.state.worker = worker
            infra.spawn(worker.run(), "telemetry-worker")
            yield

    app = create_service_app(
        service="telemetry",
        settings=settings,
        title="airgrid telemetry",
        description="Telemetry ingest and validation, and the live state of every drone.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
