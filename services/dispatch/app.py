"""Dispatch composition root: the REST API, the outbox relay and the dispatch worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from airgrid.bus import TopicView
from airgrid.config import Settings, get_settings
from airgrid.outbox import OutboxRelay
from airgrid.reference import load_reference
from airgrid.service_app import Infrastructure, create_service_app
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
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

        # A revoked key stops working here at once, not when the authenticator's cache
        # expires; every replica follows revocations, writer or not.
        def on_change(_key: str, change: Any) -> None:
            if change is not None and change.HasField("credential_revoked"):
                infra.authenticator.forget(change.credential_revoked.credential_id)

        revocations = TopicView(
            settings, REGISTRY_CHANGES, registry_pb2.RegistryChange.FromString, on_update=on_change
        )
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
