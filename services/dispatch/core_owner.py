"""The single owner of the dispatch core: one task runs the queued core calls and stores
their decisions with their outbox records in one transaction; when the database refuses
them the core is rebuilt from the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from opentelemetry.context import Context
from sqlalchemy.exc import IntegrityError

from airgrid import tracing
from airgrid.outbox import OutboxRelay
from airgrid.reference import load_reference
from airgrid.service_app import Infrastructure
from airgrid.v1 import drone_state_pb2, incident_pb2, registry_pb2
from airgrid.worker_runs import RunEnded
from services.dispatch.core_feed import feed_world, new_core, now_ms, request_of, tick
from services.dispatch.core_rebuild import (
    decide_missed,
    end_orphans,
    restore_from_database,
    with_waiting,
)
from services.dispatch.coverage import CoverageKeeper
from services.dispatch.decision_store import log_fields, store_decision, traced
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.fresh_sorties import FreshnessView
from services.dispatch.domain.model import Decision, DroneOrder, DroneView, NestView, StageReached
from services.dispatch.domain.nofly import NoFlyZone
from services.dispatch.metrics import DECISIONS, OUT_OF_AREA, record_decisions
from services.dispatch.off_loop import in_thread, run_job
from services.dispatch.patrol_freshness import PatrolFreshness
from services.dispatch.unit_of_work import UnitOfWork
from services.dispatch.writer_lock import WriterLock

log = logging.getLogger("airgrid.dispatch")

# A job is one core call (or a few): it returns the decisions to store, or an awaitable of
# them when it must read the database first. The owner task stores the decisions of all the
# jobs it finds queued in one transaction.
Job = Callable[[], list[Decision] | Awaitable[list[Decision]]]
QueuedJob = tuple[Job, asyncio.Future[None] | None, Callable[[], None] | None]
# At most this many jobs' decisions in one transaction (a restart's replay of drone states).
_BATCH_JOBS = 1000
# After how long without a decision an incident is taken from the database.
_SWEEP_AFTER_SECONDS = 10.0


class CoreOwner:
    """The core, what the views told it, and the one task that calls it: the worker's Kafka
    adapters and its clock (stream.py) queue jobs here, and only the owner task runs them."""

    def __init__(self, infra: Infrastructure, relay: OutboxRelay) -> None:
        self.infra = infra
        self.relay = relay
        settings = infra.settings
        self.reference = load_reference(settings.reference_data)
        self.core = self._new_core()
        # Coverage and rebalancing: reads the core, emits RETURN-to-nest orders.
        self.coverage = CoverageKeeper(self.reference, settings)
        # Inspection freshness for the patrols: built on the loop, handed to the core per tick.
        self.patrol_freshness = (
            PatrolFreshness(self.reference, settings) if settings.patrol_enabled else None
        )
        # What the views told earlier runs; kept across runs, so that a run after a broker
        # that lost its data still knows the fleet until the views tell it anew.
        self.specs: dict[str, registry_pb2.Drone] = {}
        self.states: dict[str, drone_state_pb2.DroneState] = {}
        self.nest_views: dict[str, NestView] = {}
        self.zone_views: dict[str, NoFlyZone] = {}
        self.jobs: asyncio.Queue[QueuedJob] = asyncio.Queue()
        # Each incident's decision span, which its later stages and commands continue.
        self.traces = tracing.IncidentTraces()
        self._rebuilding = False
        self.writer = WriterLock(
            infra.engine, f"airgrid-dispatch/{settings.topic_prefix}/{self.reference.zone.name}"
        )
        self._failure = asyncio.Event()
        self._failure_error: BaseException | None = None
        self._idle_drone_moved = False

    def _new_core(self) -> DispatchCore:
        return new_core(self.reference, self.infra.settings)

    async def _restore_core(self) -> list[Decision]:
        decisions = await self._rebuild()
        return await in_thread(lambda: self._with_waiting(decisions))

    async def _failed(self) -> None:
        await self._failure.wait()
        raise self._failure_error or RunEnded("error", "the dispatch core failed")

    def _fail(self, error: BaseException) -> None:
        """End this run: the core holds decisions the database does not have, so it must be
        rebuilt from the database."""
        if not self._failure.is_set():
            self._failure_error = error
            self._failure.set()

    async def _rebuild(self) -> list[Decision]:
        """Start the core again from the database, then feed it what the views know. Feeding
        drones may already assign waiting incidents: those decisions are returned, to be
        stored like any other (dropping them would leave missions the database never saw)."""
        core = self._new_core()
        await restore_from_database(core, self.infra.sessions)
        # The views are copied here, on the loop; the feed runs in a worker thread.
        zones, nests = list(self.zone_views.values()), list(self.nest_views.values())
        specs, states = dict(self.specs), dict(self.states)
        decisions = await in_thread(
            lambda: feed_world(core, zones=zones, nests=nests, specs=specs, states=states)
        )
        decisions += end_orphans(core)
        # Readers on the loop (/metrics, GET /v1/coverage) keep the old core until the new
        # one is whole.
        self.core = core
        return decisions

    def _with_waiting(self, decisions: list[Decision]) -> list[Decision]:
        return with_waiting(self.core, decisions)

    def _set_freshness(self, view: FreshnessView) -> list[Decision]:
        self.core.set_freshness(view)
        return []

    def _tick(self) -> list[Decision]:
        moved, self._idle_drone_moved = self._idle_drone_moved, False
        return tick(self.core, now_ms(), idle_drone_moved=moved)

    async def _decide_undecided(self) -> list[Decision]:
        return await decide_missed(
            self.core, self.infra.sessions, older_than_s=_SWEEP_AFTER_SECONDS
        )

    async def _own_core(self) -> None:
        """Run the queued jobs' core calls, store all their decisions in one transaction,
        then tell the jobs' submitters. An incident arriving while a transaction is in
        flight waits for that one only, not for every job queued before it, each with a
        transaction of its own (an incident would wait behind every drone-state job)."""
        while True:
            batch = [await self.jobs.get()]
            while not self.jobs.empty() and len(batch) < _BATCH_JOBS:
                batch.append(self.jobs.get_nowait())
            decisions: list[Decision] = []
            ran: list[tuple[asyncio.Future[None] | None, Callable[[], None] | None]] = []
            for job, done, after in batch:
                try:
                    found = await run_job(job)
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.exception("dispatch job failed")
                    if done is not None and not done.done():
                        done.set_exception(error)
                    continue
                decisions += found
                ran.append((done, after))
            self._report_out_of_area()
            try:
                await self._decide(decisions)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the run ends: _decide called _fail
                log.exception("dispatch decisions not stored")
                for done, _ in ran:
                    if done is not None and not done.done():
                        done.set_exception(error)
                continue
            for done, after in ran:
                if after is not None:
                    after()
                if done is not None and not done.done():
                    done.set_result(None)

    def _report_out_of_area(self) -> None:
        for refused in self.core.take_out_of_area():
            OUT_OF_AREA.labels(refused.kind).inc()
            log.warning(
                "entity outside the zone kept out of dispatch",
                extra={"kind": refused.kind, "entity": refused.entity_id, "reason": refused.reason},
            )

    def _submit(self, job: Job, after: Callable[[], None] | None = None) -> asyncio.Future[None]:
        """Queue a job; the future is resolved once its decisions are stored, after `after`."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.jobs.put_nowait((job, done, after))
        return done

    def _drone_reported(self, view: DroneView, at: int) -> list[Decision]:
        decisions = self.core.upsert_drone(view, at)
        if view.id not in self.core.busy:
            self._idle_drone_moved = True  # the next clock tick re-tries the queue
        return decisions

    def _accept(
        self, incident: incident_pb2.Incident, parent: Context | None = None
    ) -> list[Decision]:
        """The core's decision on an incident, in a span of the incident's trace (`parent`:
        the context its record carries) that its decisions and later stages continue."""
        with tracing.span(
            "dispatch.decide",
            parent=parent,
            kind=tracing.CONSUMER,
            attributes={"airgrid.incident_id": incident.id},
        ) as span:
            decisions = self.core.accept(request_of(incident), now_ms())
            self.traces.remember(incident.id, span)
            return decisions

    def _cancel(self, cancelled: incident_pb2.IncidentCancelled) -> list[Decision]:
        return self.core.cancel(cancelled.incident_id, now_ms())

    async def _decide(self, decisions: list[Decision]) -> None:
        """Store a core call's decisions and their outbox records in one transaction, behind
        the writer's fence. Decisions that cannot be stored end the run: the core now holds
        what the database does not, so the next run rebuilds it from the database."""
        if not decisions:
            return
        try:
            async with UnitOfWork(self.infra.sessions) as uow:
                await self.writer.fence(uow.session)
                rows = await uow.decision_rows(decisions)
                for decision in decisions:
                    with traced(self.traces, decision):
                        store_decision(rows, decision, self.specs)
        except IntegrityError as refusal:
            # The database disagrees with the core (a stale view or another writer): it is
            # the truth, so the core starts again from it and decides anew.
            if self._rebuilding:
                raise  # refused again while rebuilding: the rebuild below starts over
            log.error(
                "decisions refused by the database; rebuilding the dispatch core",
                extra={"refusal": str(refusal.orig).splitlines()[0] if refusal.orig else ""},
            )
            self._rebuilding = True
            try:
                for _ in range(3):
                    try:
                        await self._decide(await self._restore_core())
                        break
                    except IntegrityError:
                        continue
                else:
                    raise RunEnded(
                        "error",
                        "the dispatch core keeps disagreeing with the database; is a second "
                        "dispatch worker writing for this zone?",
                    )
            except Exception as error:
                self._fail(error)
                raise
            finally:
                self._rebuilding = False
            return
        except Exception as error:
            self._fail(error)
            raise
        self.relay.notify()
        record_decisions(decisions, self.core)
        for decision in decisions:
            kind = type(decision).__name__.lower()
            if not isinstance(decision, DroneOrder | StageReached):
                DECISIONS.labels(kind).inc()
            log.info("dispatch " + kind, extra=log_fields(decision))
