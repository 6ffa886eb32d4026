"""Dispatch worker: its Kafka adapters (the registry and drone-state views, the incident
consumer) feed the core's owner (core_owner.py); its runs are supervised and fenced."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from aiokafka import ConsumerRecord

from airgrid.broker_watch import BrokerWatch
from airgrid.bus import (
    ConsumerSpec,
    SeenIds,
    TopicView,
    ensure_topics,
    header,
    run_batches,
    start_group_consumer,
    wait_for_broker,
)
from airgrid.config import Settings
from airgrid.outbox import OutboxRelay
from airgrid.service_app import Infrastructure
from airgrid.topics import DRONE_STATE, INCIDENTS, REGISTRY_CHANGES
from airgrid.v1 import drone_state_pb2, incident_pb2, registry_pb2
from airgrid.worker_runs import RunEnded, cancel_within, stop_quietly
from services.dispatch import store
from services.dispatch.core_feed import drone_view, nest_view, now_ms, zone_of
from services.dispatch.core_owner import CoreOwner
from services.dispatch.holes_read_model import HolesReadModel
from services.dispatch.incident_records import decode_incident_events, rewind_offsets_past_the_end
from services.dispatch.metrics import ACCEPT_TO_DECISION_SECONDS, DECISION_SECONDS, WRITING
from services.dispatch.supervisor import WorkerStatus, supervise

# How long a stopping run waits for its tasks, the core call in flight among them.
CORE_STOP_TIMEOUT_S = 120.0

log = logging.getLogger("airgrid.dispatch")


class DispatchWorker(CoreOwner):
    """One task owns the core; Kafka views, the incident consumer and the clock queue work
    for it. Each core call's decisions are stored with their outbox records in one
    transaction; when the database refuses them the core is rebuilt from the database.

    `run` is supervised: whenever a run ends for any reason but shutdown (the broker gone or
    replaced by an empty one, the writer lock's connection lost, decisions that could not be
    stored, a Kafka client failing), it is logged, readiness says so, and after a bounded
    back-off a new run re-acquires the writer role, re-creates the topics and its Kafka
    clients, and rebuilds the core from the database, as a restart would."""

    def __init__(self, infra: Infrastructure, relay: OutboxRelay) -> None:
        super().__init__(infra, relay)
        self.seen = SeenIds()
        self.status = WorkerStatus()
        self.registry_view, self.state_view = self._new_views()
        self._views_started = False
        # While the views replay their topics at the start of a run, they only fill the dicts
        # of the fleet; the core is then built once from the database and their latest word
        # (one upsert per drone, not one per record of the log, each of which could re-try
        # the whole queue), as after a refusal by the database.
        self._replaying = True
        # fetch_max_wait_ms (POST -> decision latency): the embedded broker
        # holds an empty fetch for the whole wait even when an incident arrives meanwhile;
        # 10 ms keeps that delay far under the 50 ms target at ~100 idle fetches/s.
        self.spec = ConsumerSpec(
            [INCIDENTS], group_id="airgrid-dispatch", max_records=500, fetch_max_wait_ms=10
        )

    def _new_views(self) -> tuple[TopicView, TopicView]:
        settings = self.infra.settings
        registry_view = TopicView(
            settings,
            REGISTRY_CHANGES,
            registry_pb2.RegistryChange.FromString,
            on_update=self._on_registry,
        )
        state_view = TopicView(
            settings,
            DRONE_STATE,
            drone_state_pb2.DroneState.FromString,
            on_update=self._on_state,
        )
        return registry_view, state_view

    # -- supervision -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled; every run that ends otherwise is started again."""
        await supervise(self._run_once, self.status, name="dispatch worker")

    async def _run_once(self) -> None:
        settings = self.infra.settings
        self.status.set("waiting for the broker", ready=False)
        await wait_for_broker(settings, timeout=60)
        self.status.set("acquiring the writer role", ready=False)

        def standing_by() -> None:
            log.warning(
                "another dispatch worker writes for this zone; standing by",
                extra={"zone": self.reference.zone.name},
            )
            self.status.set("standing by for the zone's writer", ready=True)

        await self.writer.acquire(on_standby=standing_by)
        try:
            self.status.set("restoring", ready=False)
            # An empty broker came back: the declared topics, before any client of this run
            # asks for them and gets the broker's defaults.
            await ensure_topics(settings)
            await self._run_as_writer()
        finally:
            await self.writer.release()

    async def _run_as_writer(self) -> None:
        """One run as the writer: rebuild the core, start the views, the clock and the
        incident consumer, and return (by raising) when any of them ends or a watch fires."""
        self.jobs = asyncio.Queue()
        self._failure = asyncio.Event()
        self._failure_error = None
        self._replaying = True
        if self._views_started:  # a view reads once; later runs read through new ones
            self.registry_view, self.state_view = self._new_views()
        self._views_started = True
        broker_watch = BrokerWatch(settings=self.infra.settings, topics=_WATCHED_TOPICS)
        tasks = [
            asyncio.create_task(self._own_core(), name="dispatch-core"),
            asyncio.create_task(self.writer.watch(), name="dispatch-writer-lock"),
            asyncio.create_task(broker_watch.watch(), name="dispatch-broker-watch"),
            asyncio.create_task(self._failed(), name="dispatch-failure"),
            asyncio.create_task(self._consume(), name="dispatch-incidents"),
            asyncio.create_task(
                HolesReadModel(
                    sessions=self.infra.sessions,
                    writer=self.writer,
                    keeper=self.coverage,
                    zone=self.reference.zone.name,
                ).run(),
                name="dispatch-coverage-holes",
            ),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises why the run ends
            ended = ", ".join(sorted(t.get_name() for t in done))
            raise RunEnded("ended", f"{ended} ended")
        finally:
            WRITING.set(0)
            self.status.set("stopping", ready=False)
            # A core call in flight is waited for (no two calls overlap on a core), longer
            # than other tasks: a rebuild from a large registry takes seconds.
            await cancel_within(tasks, "dispatch-worker", CORE_STOP_TIMEOUT_S)
            await self.registry_view.stop()
            await self.state_view.stop()

    async def _consume(self) -> None:
        await self.registry_view.start()
        await self.state_view.start()
        await asyncio.wait_for(self.registry_view.caught_up.wait(), timeout=60)
        await asyncio.wait_for(self.state_view.caught_up.wait(), timeout=60)
        # The core starts from the database and the views' latest word on each drone, nest
        # and zone; from here on every change goes to it as it comes. Restored incidents that
        # never got an outcome get one now.
        self._replaying = False
        await self._submit(self._restore_core)
        ticker = asyncio.create_task(self._tick_forever(), name="dispatch-clock")
        consumer = None
        try:
            consumer = await start_group_consumer(self.infra.settings, self.spec)
            await rewind_offsets_past_the_end(consumer)
            self.status.set("ok", ready=True)
            WRITING.set(1)
            log.info("dispatch worker consuming incidents")
            await run_batches(consumer, self._handle_incidents, spec=self.spec, name="dispatch")
        finally:
            await cancel_within([ticker], "dispatch-incidents")
            if consumer is not None:
                await stop_quietly(consumer.stop, "incident consumer")

    async def _tick_forever(self) -> None:
        period = self.infra.settings.dispatch_tick_seconds
        swept = time.monotonic()
        while True:
            await asyncio.sleep(period)
            if self.patrol_freshness is not None:
                view = self.patrol_freshness.view(now_ms())
                self._submit(functools.partial(self._set_freshness, view))
            done = self._submit(self._tick)
            if time.monotonic() - swept >= _SWEEP_SECONDS:
                swept = time.monotonic()
                self._submit(self._decide_undecided)
            # Coverage gauge and rebalancing: idle drones move to close holes.
            self._submit(lambda: self.coverage.rebalance(self.core, now_ms()))
            await asyncio.wait([done])

    # -- inputs ----------------------------------------------------------------------------

    def _on_registry(self, key: str, change: registry_pb2.RegistryChange | None) -> None:
        if self.patrol_freshness is not None:
            self.patrol_freshness.on_registry_change(key, change)
        if change is None:
            return
        which = change.WhichOneof("entity")
        if which == "drone":
            self.specs[change.drone.id] = change.drone
            if self._replaying:
                return
            state = self.states.get(change.drone.id)
            if state is None and not self.state_view.caught_up.is_set():
                # Its state is on the way (both views replay at start-up) and feeds the core
                # then; a drone fed without one looks unlinked, and a restored mission would
                # fail and be re-dispatched for "link lost".
                return
            view = drone_view(change.drone, state)
            self.jobs.put_nowait((lambda: self.core.upsert_drone(view), None, None))
        elif which == "nest":
            nest = nest_view(change.nest)
            self.nest_views[nest.id] = nest
            if self._replaying:
                return
            self.jobs.put_nowait((lambda: self.core.upsert_nest(nest), None, None))
        elif which == "geofence":
            zone = zone_of(change.geofence)
            fence_id = change.geofence.id
            if zone is not None:
                self.zone_views[fence_id] = zone
            else:
                self.zone_views.pop(fence_id, None)
            if self._replaying:
                return
            self.jobs.put_nowait((lambda: self.core.upsert_zone(zone, fence_id), None, None))
        elif change.deleted and change.deleted_kind == "geofence":
            self.zone_views.pop(change.entity_id, None)
            fence_id = change.entity_id
            if self._replaying:
                return
            self.jobs.put_nowait((lambda: self.core.upsert_zone(None, fence_id), None, None))

    def _on_state(self, key: str, state: drone_state_pb2.DroneState | None) -> None:
        if state is None:
            return
        self.states[state.drone_id] = state
        if self.patrol_freshness is not None:
            self.patrol_freshness.observe(state)
        spec = self.specs.get(state.drone_id)
        if spec is None or self._replaying:
            return
        view = drone_view(spec, state)
        at = state.event_time_ms or now_ms()
        self.jobs.put_nowait((lambda: self._drone_reported(view, at), None, None))

    async def _handle_incidents(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        waits = []
        events = decode_incident_events(records, self.seen)
        # One read for the batch's incidents, here rather than in the owner task's jobs.
        undecided = await self._undecided(
            [event.accepted.id for event, _, _ in events if event.HasField("accepted")]
        )
        for event, consumed, parent in events:
            if event.HasField("accepted"):
                if event.accepted.id not in undecided:
                    continue  # unknown here (another deployment) or decided before a restart
                accepted = event.accepted
                waits.append(
                    self._submit(
                        functools.partial(self._accept, accepted, parent),
                        functools.partial(_observe_decided, accepted, consumed),
                    )
                )
            elif event.HasField("cancelled"):
                waits.append(self._submit(functools.partial(self._cancel, event.cancelled)))
        await asyncio.gather(*waits)
        for record in records:
            self.seen.remember(header(record, "ce_id"))

    async def _undecided(self, incident_ids: list[str]) -> set[str]:
        if not incident_ids:
            return set()
        async with self.infra.sessions() as session:
            return await store.awaiting_decision(session, incident_ids)


_WATCHED_TOPICS = (INCIDENTS, REGISTRY_CHANGES, DRONE_STATE)
# How often incidents without a decision are taken from the database (core_owner.py).
_SWEEP_SECONDS = 10.0


async def run_worker(settings: Settings) -> None:
    """The dispatch worker and its outbox relay in a process of their own, without the REST
    API: `python -m services.dispatch.stream`. Any number may run; one writes per zone."""
    infra = await Infrastructure.open("dispatch", settings)
    relay = OutboxRelay(
        service="dispatch",
        sessions=infra.sessions,
        producer=infra.producer,
        poll_seconds=settings.outbox_poll_seconds,
    )
    infra.spawn(relay.run(), "outbox-relay")
    try:
        await DispatchWorker(infra, relay).run()
    finally:
        await infra.close()


def _observe_decided(incident: incident_pb2.Incident, consumed: float) -> None:
    """An incident's decision is stored: how long it took from its record, and from its
    acceptance over HTTP."""
    DECISION_SECONDS.observe(time.perf_counter() - consumed)
    ACCEPT_TO_DECISION_SECONDS.observe(max(0.0, time.time() - incident.accepted_time_ms / 1000))


if __name__ == "__main__":
    from airgrid.config import get_settings
    from airgrid.observability import configure_logging
    from airgrid.tracing import configure_tracing

    _settings = get_settings()
    configure_logging(_settings.log_level, _settings.log_format, "dispatch")
    configure_tracing(_settings, "dispatch")
    asyncio.run(run_worker(_settings))
