"""Dispatch composition root: the REST API, the outbox relay and the dispatch worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI

from airgrid.config import Settings, get_settings
from airgrid.outbox import OutboxRelay
from airgrid.reference import load_reference
from airgrid.revocations import revocation_view
from airgrid.service_app import Infrastructure, create_service_app
from services.dispatch.api import router
from services.dispatch.coverage import router as coverage_router
from services.dispatch.metrics import watch_core
from services.dispatch.stream import DispatchWorker


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.reference = load_reference(settings.reference_data)
        infra = await Infrastructure.open("dispatch", settings)
        relay = OutboxRelay(
            service="dispatch",
            sessions=infra.sessions,
            producer=infra.producer,
            poll_seconds=settings.outbox_poll_seconds,
        )
        app.state.infra = infra
        app.state.authenticator = infra.authenticator

        revocations = revocation_view(settings, infra.authenticator)  # every replica
        await revocations.start()
        app.state.relay = relay
        worker = DispatchWorker(infra, relay)
        watch_core(worker)
        app.state.worker = worker
        infra.spawn(relay.run(), "outbox-relay")
        infra.spawn(worker.run(), "dispatch-worker")
        infra.checks["dispatch-worker"] = worker.status.check
        try:
            yield
        finally:
            await revocations.stop()
            await infra.close()

    app = create_service_app(
        service="dispatch",
        settings=settings,
        title="airgrid dispatch",
        description="Incidents, missions, assignment decisions and the 5-minute SLA clock.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(coverage_router)
    return app
