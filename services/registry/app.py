"""Registry composition root: REST API, reference seed, snapshot publication, outbox relay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from airgrid.broker_watch import recover_after_each_loss
from airgrid.config import Settings, get_settings
from airgrid.outbox import OutboxRelay
from airgrid.reference import load_reference
from airgrid.revocations import revocation_view
from airgrid.service_app import Infrastructure, create_service_app
from airgrid.topics import REGISTRY_CHANGES
from services.registry.api import router
from services.registry.api_inspection import router as inspection_router
from services.registry.changes import publish_snapshot
from services.registry.inspection import InspectionContext
from services.registry.metrics import SNAPSHOTS_REPUBLISHED
from services.registry.seed import seed_reference

log = logging.getLogger("airgrid.registry")

# Each router serves its resources under /v1.
ROUTERS = (router, inspection_router)


def build_app(settings: Settings | None = None, *, seed: bool = True) -> FastAPI:
    settings = settings or get_settings()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = await Infrastructure.open("registry", settings)
        app.state.infra = infra
        app.state.authenticator = infra.authenticator
        reference = load_reference(settings.reference_data)
        app.state.zone = reference.zone  # registry positions must lie in it
        timezone = str(ZoneInfo(settings.zone_timezone))  # an unknown zone stops start-up
        app.state.inspection = InspectionContext(reference.zone, timezone, reference.incident_types)
        if seed:
            result = await seed_reference(infra.sessions, reference, timezone=timezone)
            log.info("reference zone seeded", extra={"added": result.total})
        # The broker may have lost the topic (the embedded one keeps data in memory):
        # republish the whole registry so that every consumer can rebuild its view.
        async with infra.sessions() as session, session.begin():
            count = await publish_snapshot(session, timezone=timezone)
        log.info("registry snapshot queued", extra={"entities": count})
        relay = OutboxRelay(
            service="registry",
            sessions=infra.sessions,
            producer=infra.producer,
            poll_seconds=settings.outbox_poll_seconds,
        )
        app.state.relay = relay
        infra.spawn(relay.run(), "outbox-relay")

        revocations = revocation_view(settings, infra.authenticator)  # revoked on any replica
        await revocations.start()

        async def republish() -> None:
            """The broker came back without its data: every consumer's registry view would
            stay empty (or stale) until the next change, so the whole registry again."""
            async with infra.sessions() as session, session.begin():
                count = await publish_snapshot(session, timezone=timezone)
            relay.notify()
            await revocations.stop()
            await revocations.start()  # from the start of the new log
            SNAPSHOTS_REPUBLISHED.inc()
            log.info("registry snapshot queued again", extra={"entities": count})

        app.state.broker_watching = asyncio.Event()  # set once the watch has seen the topic
        infra.spawn(
            recover_after_each_loss(
                settings,
                [REGISTRY_CHANGES],
                republish,
                what="republishing the registry",
                probed=app.state.broker_watching,
            ),
            "registry-republish",
        )
        try:
            yield
        finally:
            await revocations.stop()
            await infra.close()

    app = create_service_app(
        service="registry",
        settings=settings,
        title="airgrid registry",
        description="Departments, nests, drones, no-fly zones, credentials, inspection plans "
        "and the scenario catalogue.",
        lifespan=lifespan,
    )
    for resource_router in ROUTERS:
        app.include_router(resource_router)
    return app
