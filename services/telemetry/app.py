"""Telemetry composition root: the REST API, the topic views, the feed hub, the stream worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from airgrid.bus import TopicView, now_ms
from airgrid.config import Settings, get_settings
from airgrid.reference import ReferenceData, load_reference
from airgrid.revocations import on_revocation
from airgrid.service_app import Infrastructure, create_service_app
from airgrid.worker_runs import cancel_within
from services.telemetry.api import router
from services.telemetry.case_escalator import CaseEscalator
from services.telemetry.case_keeper import CaseKeeper
from services.telemetry.case_precision import keep_precision
from services.telemetry.feed_routing import FeedRouting, incident_view, mission_view
from services.telemetry.feed_stream import StreamSlots
from services.telemetry.feeds import FeedHub
from services.telemetry.freshness_keeper import FreshnessKeeper
from services.telemetry.metrics import initialise_labels
from services.telemetry.store import purge_older_than
from services.telemetry.stream import TelemetryWorker
from services.telemetry.topic_views import command_view, registry_view, state_view
from services.telemetry.view_recovery import ViewRecovery

log = logging.getLogger("airgrid.telemetry")

RETENTION_CHECK_SECONDS = 600.0


async def enforce_retention(infra: Infrastructure, settings: Settings) -> None:
    """Deletes track points past the retention period, now and every ten minutes."""
    while True:
        cutoff = now_ms() - int(settings.track_retention_hours * 3_600_000)
        try:
            purged = await purge_older_than(infra.engine, cutoff)
            if purged:
                log.info("track retention", extra={"purged": purged})
        except Exception:
            log.exception("track retention failed; retrying later")
        await asyncio.sleep(RETENTION_CHECK_SECONDS)


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    await cancel_within([task], "telemetry")


def case_escalator(
    settings: Settings, infra: Infrastructure, registry: TopicView, reference: ReferenceData
) -> CaseEscalator | None:
    """The escalator when dispatch's URL and a key are configured; otherwise escalation is
    off, and the log says so once."""
    if not settings.dispatch_url or not settings.dispatch_key:
        log.warning(
            "case escalation off: set AIRGRID_DISPATCH_URL and AIRGRID_DISPATCH_KEY to post "
            "the incidents that cases ask for"
        )
        return None
    log.info("case escalation on", extra={"dispatch_url": settings.dispatch_url})
    return CaseEscalator(
        settings=settings,
        engine=infra.engine,
        producer=infra.producer,
        registry=registry,
        capabilities={t.code: t.required_capabilities for t in reference.incident_types},
    )


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        infra = await Infrastructure.open("telemetry", settings)
        app.state.infra = infra
        app.state.authenticator = infra.authenticator

        hub = FeedHub(settings)
        registry = registry_view(
            settings,
            on_update=on_revocation(
                infra.authenticator,
                lambda key_id: hub.close_streams_of(key_id, "credential revoked"),
            ),
        )
        reference = load_reference(settings.reference_data)
        freshness = FreshnessKeeper(reference, settings)
        freshness.follow(registry)
        states = state_view(settings)
        incidents, missions = incident_view(settings), mission_view(settings)
        initialise_labels()
        app.state.registry = registry
        app.state.states = states
        app.state.feeds = hub
        app.state.freshness = freshness
        app.state.feed_slots = StreamSlots(settings.feed_max_streams_per_key)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(infra.close)
            for view in (registry, states, incidents, missions):
                await view.start()
                stack.push_async_callback(view.stop)
            worker = TelemetryWorker(
                settings=settings,
                producer=infra.producer,
                registry=registry,
                states=states,
                engine=infra.engine,
                routing=FeedRouting(incidents, missions),
                on_accepted=freshness.observe,
            )
            commands = command_view(settings, on_update=worker.on_command)
            await commands.start()
            stack.push_async_callback(commands.stop)
            await hub.start()
            stack.push_async_callback(hub.stop)
            app.state.worker = worker
            infra.spawn(worker.run(), "telemetry-worker")
            escalator = case_escalator(settings, infra, registry, reference)
            keeper = CaseKeeper(
                settings=settings,
                producer=infra.producer,
                registry=registry,
                engine=infra.engine,
                clock=now_ms,
                escalate=escalator.consider if escalator else None,
            )
            if escalator is not None:
                infra.spawn(escalator.run(), "telemetry-case-escalator")
            infra.spawn(keeper.run(), "telemetry-case-keeper")
            infra.spawn(keep_precision(infra.engine), "telemetry-case-precision")
            # An empty broker on the same address leaves the views' positions past its end;
            # cancelled before the views stop (the stack unwinds in reverse).
            recovery = ViewRecovery(
                settings,
                [registry, states, incidents, missions, commands],
                also=[hub.read_new_log],  # the department feeds (SSE)
            )
            watching = asyncio.create_task(recovery.run(), name="telemetry-view-recovery")
            stack.push_async_callback(cancel_and_wait, watching)
            infra.spawn(enforce_retention(infra, settings), "telemetry-retention")
            # The stored sightings before the first answer; a last merge at shutdown.
            await freshness.try_sync(infra.engine)
            stack.push_async_callback(freshness.try_sync, infra.engine)
            infra.spawn(freshness.run(infra.engine), "telemetry-freshness")
            yield

    app = create_service_app(
        service="telemetry",
        settings=settings,
        title="airgrid telemetry",
        description="Telemetry ingest and validation, live drone state, anomalies, tracks, feeds.",
        lifespan=lifespan,
    )
    app.include_router(router)
    return app
