"""Dispatch worker: feeds the core from Kafka, persists its decisions and publishes them."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import IntegrityError

from airgrid.bus import ConsumerSpec, SeenIds, TopicView, header, run_batches, start_group_consumer
from airgrid.db import transaction
from airgrid.geo import haversine_m
from airgrid.observability import RECORDS_CONSUMED
from airgrid.outbox import OutboxRelay, enqueue
from airgrid.service_app import Infrastructure
from airgrid.topics import (
    DISPATCH_DECISIONS,
    DRONE_COMMANDS,
    DRONE_STATE,
    INCIDENTS,
    MISSION_EVENTS,
    REGISTRY_CHANGES,
)
from airgrid.v1 import (
    command_pb2,
    dispatch_pb2,
    drone_state_pb2,
    incident_pb2,
    mission_pb2,
    registry_pb2,
    telemetry_pb2,
)
from services.dispatch import store
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import (
    Assigned,
    Decision,
    DroneView,
    IncidentRequest,
    MissionStage,
    NestView,
    Queued,
)
from services.dispatch.domain.stages import observed_stage
from services.dispatch.models import IncidentRow

log = logging.getLogger("airgrid.dispatch")

DECISION_SECONDS = Histogram(
    "airgrid_dispatch_decision_seconds",
    "From an incident consumed to its decision committed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ACCEPT_TO_DECISION_SECONDS = Histogram(
    "airgrid_dispatch_accept_to_decision_seconds",
    "From an incident accepted over HTTP to its first decision committed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DECISIONS = Counter(
    "airgrid_dispatch_decisions_total", "Decisions of the dispatch core, by kind.", ["kind"]
)
MISSION_STAGES = Counter(
    "airgrid_mission_stages_total", "Mission stages reached, by stage.", ["stage"]
)

_STAGE_PROTO = {
    MissionStage.ASSIGNED: mission_pb2.MISSION_STAGE_ASSIGNED,
    MissionStage.LAUNCHED: mission_pb2.MISSION_STAGE_LAUNCHED,
    MissionStage.ON_SCENE: mission_pb2.MISSION_STAGE_ON_SCENE,
    MissionStage.RETURNING: mission_pb2.MISSION_STAGE_RETURNING,
    MissionStage.COMPLETED: mission_pb2.MISSION_STAGE_COMPLETED,
    MissionStage.CANCELLED: mission_pb2.MISSION_STAGE_CANCELLED,
    MissionStage.FAILED: mission_pb2.MISSION_STAGE_FAILED,
}


@dataclass
class MissionTrack:
    incident_id: str
    drone_id: str
    scene_lon: float
    scene_lat: float
    stage: MissionStage


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def request_of(incident: incident_pb2.Incident) -> IncidentRequest:
    return IncidentRequest(
        id=incident.id,
        priority=incident.priority,
        lon=incident.lon,
        lat=incident.lat,
        required_capabilities=frozenset(incident.required_capabilities),
        drones_needed=incident.drones_needed,
        on_scene_seconds=incident.on_scene_seconds,
        accepted_ms=incident.accepted_time_ms,
    )


def request_of_row(row: IncidentRow) -> IncidentRequest:
    return IncidentRequest(
        id=row.id,
        priority=row.priority,
        lon=row.lon,
        lat=row.lat,
        required_capabilities=frozenset(row.required_capabilities),
        drones_needed=row.drones_needed,
        on_scene_seconds=row.on_scene_seconds,
        accepted_ms=int(row.accepted_at.timestamp() * 1000),
    )


def drone_view(spec: registry_pb2.Drone, state: drone_state_pb2.DroneState | None) -> DroneView:
    airborne = state is not None and state.flight_mode not in (
        telemetry_pb2.FLIGHT_MODE_DOCKED,
        telemetry_pb2.FLIGHT_MODE_UNSPECIFIED,
    )
    return DroneView(
        id=spec.id,
        home_nest=spec.home_nest,
        capabilities=frozenset(spec.capabilities),
        cruise_speed_mps=spec.cruise_speed_mps,
        climb_rate_mps=spec.climb_rate_mps,
        cruise_altitude_m=spec.cruise_altitude_m,
        launch_delay_s=spec.launch_delay_s,
        endurance_s=spec.endurance_s,
        active=spec.status == "active",
        lon=state.lon if state is not None else None,
        lat=state.lat if state is not None else None,
        battery_pct=state.battery_pct if state is not None else 0.0,
        airborne=airborne,
        link_ok=state.link_ok if state is not None else False,
        faults=tuple(state.faults) if state is not None else (),
    )


def nest_view(nest: registry_pb2.Nest) -> NestView:
    return NestView(
        id=nest.id,
        lon=nest.lon,
        lat=nest.lat,
        online=nest.status == "online",
        wind_mps=nest.wind_mps,
        wind_hold_mps=nest.wind_hold_mps,
    )


Job = Callable[[], Awaitable[None]]


class DispatchWorker:
    """One task owns the core; Kafka views and the incident consumer queue work for it."""

    def __init__(self, infra: Infrastructure, relay: OutboxRelay) -> None:
        self.infra = infra
        self.relay = relay
        self.core = DispatchCore(reserve_pct=infra.settings.battery_reserve_pct)
        self.specs: dict[str, registry_pb2.Drone] = {}
        self.states: dict[str, drone_state_pb2.DroneState] = {}
        self.missions: dict[str, MissionTrack] = {}
        self.jobs: asyncio.Queue[tuple[Job, asyncio.Future[None] | None]] = asyncio.Queue()
        self.seen = SeenIds()
        self.registry_view = TopicView(
            infra.settings,
            REGISTRY_CHANGES,
            registry_pb2.RegistryChange.FromString,
            on_update=self._on_registry,
        )
        self.state_view = TopicView(
            infra.settings,
            DRONE_STATE,
            drone_state_pb2.DroneState.FromString,
            on_update=self._on_state,
        )
        self.spec = ConsumerSpec([INCIDENTS], group_id="airgrid-dispatch", max_records=500)

    # -- start-up ------------------------------------------------------------------------

    async def run(self) -> None:
        await self._restore()
        owner = asyncio.create_task(self._own_core(), name="dispatch-core")
        try:
            await self.registry_view.start()
            await self.state_view.start()
            await asyncio.wait_for(self.registry_view.caught_up.wait(), timeout=60)
            await asyncio.wait_for(self.state_view.caught_up.wait(), timeout=60)
            consumer = await start_group_consumer(self.infra.settings, self.spec)
            try:
                await run_batches(consumer, self._handle_incidents, spec=self.spec, name="dispatch")
            finally:
                await consumer.stop()
        finally:
            owner.cancel()
            await self.registry_view.stop()
            await self.state_view.stop()

    async def _restore(self) -> None:
        async with self.infra.sessions() as session:
            incidents = await store.open_incidents(session)
            missions = await store.active_missions(session)
            rows = {i.id: i for i in incidents}
            for m in missions:
                if m.incident_id not in rows:
                    row = await session.get(IncidentRow, m.incident_id)
                    if row is not None:
                        rows[row.id] = row
        self.core.restore(
            incidents=[request_of_row(rows[i.id]) for i in incidents],
            missions=[(m.id, m.incident_id, m.drone_id, m.slot) for m in missions],
        )
        for m in missions:
            row = rows.get(m.incident_id)
            if row is not None:
                self.missions[m.id] = MissionTrack(
                    m.incident_id, m.drone_id, row.lon, row.lat, MissionStage(m.stage)
                )
        log.info(
            "dispatch core restored",
            extra={"open_incidents": len(incidents), "active_missions": len(missions)},
        )

    # -- the single owner of the core ------------------------------------------------------

    async def _own_core(self) -> None:
        while True:
            job, done = await self.jobs.get()
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("dispatch job failed")
                if done is not None and not done.done():
                    done.set_exception(error)
                continue
            if done is not None and not done.done():
                done.set_result(None)

    def _submit(self, job: Job) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.jobs.put_nowait((job, done))
        return done

    # -- inputs ----------------------------------------------------------------------------

    def _on_registry(self, key: str, change: registry_pb2.RegistryChange | None) -> None:
        if change is None:
            return
        which = change.WhichOneof("entity")
        if which == "drone":
            self.specs[change.drone.id] = change.drone
            view = drone_view(change.drone, self.states.get(change.drone.id))
            self.jobs.put_nowait((lambda: self._decide(self.core.upsert_drone(view)), None))
        elif which == "nest":
            nest = nest_view(change.nest)
            self.jobs.put_nowait((lambda: self._decide(self.core.upsert_nest(nest)), None))

    def _on_state(self, key: str, state: drone_state_pb2.DroneState | None) -> None:
        if state is None:
            return
        self.states[state.drone_id] = state
        spec = self.specs.get(state.drone_id)
        if spec is None:
            return
        view = drone_view(spec, state)
        self.jobs.put_nowait((lambda: self._drone_moved(view, state), None))

    async def _handle_incidents(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        waits = []
        for record in records:
            if self.seen.contains(header(record, "ce_id")):
                RECORDS_CONSUMED.labels("dispatch", "duplicate").inc()
                continue
            try:
                event = incident_pb2.IncidentEvent.FromString(record.value or b"")
            except Exception:
                RECORDS_CONSUMED.labels("dispatch", "undecodable").inc()
                log.error("undecodable incident event skipped", extra={"offset": record.offset})
                continue
            RECORDS_CONSUMED.labels("dispatch", "ok").inc()
            consumed = time.perf_counter()
            if event.HasField("accepted"):
                waits.append(
                    self._submit(functools.partial(self._accept, event.accepted, consumed))
                )
            elif event.HasField("cancelled"):
                waits.append(self._submit(functools.partial(self._cancel, event.cancelled)))
        await asyncio.gather(*waits)
        for record in records:
            self.seen.remember(header(record, "ce_id"))

    # -- effects -----------------------------------------------------------------------------

    async def _accept(self, incident: incident_pb2.Incident, consumed: float) -> None:
        async with self.infra.sessions() as session:
            row = await session.get(IncidentRow, incident.id)
        if row is None or row.status not in ("accepted", "queued"):
            return  # unknown here (another deployment) or decided before a restart
        decisions = self.core.accept(request_of(incident))
        await self._decide(decisions)
        DECISION_SECONDS.observe(time.perf_counter() - consumed)
        ACCEPT_TO_DECISION_SECONDS.observe(max(0.0, time.time() - incident.accepted_time_ms / 1000))

    async def _cancel(self, cancelled: incident_pb2.IncidentCancelled) -> None:
        missions = self.core.cancel(cancelled.incident_id)
        if not missions:
            return
        async with transaction(self.infra.sessions) as session:
            for mission_id in missions:
                track = self.missions.pop(mission_id, None)
                if track is None:
                    continue
                self._command(session, track.drone_id, mission_id, command_pb2.COMMAND_KIND_RETURN)
                self._mission_event(session, mission_id, track, MissionStage.CANCELLED, "cancelled")
        self.relay.notify()
        await self._decide(self.core.drain_queue())

    async def _drone_moved(self, view: DroneView, state: drone_state_pb2.DroneState) -> None:
        await self._decide(self.core.upsert_drone(view))
        mission_id = self.core.busy.get(view.id)
        if mission_id is None or mission_id not in self.missions:
            return
        track = self.missions[mission_id]
        distance = haversine_m(state.lon, state.lat, track.scene_lon, track.scene_lat)
        stage = observed_stage(
            track.stage,
            flying_this_mission=state.mission_id == mission_id,
            mode=state.flight_mode,
            distance_to_scene_m=distance,
        )
        if stage is None:
            return
        at = _ms_to_dt(state.event_time_ms or int(time.time() * 1000))
        async with transaction(self.infra.sessions) as session:
            moved = await store.advance_mission(session, mission_id=mission_id, stage=stage, at=at)
            if moved is not None:
                self._mission_event(session, mission_id, track, stage, "")
        track.stage = stage
        MISSION_STAGES.labels(stage.value).inc()
        self.relay.notify()
        log.info(
            "mission stage",
            extra={"mission_id": mission_id, "drone_id": view.id, "stage": stage.value},
        )
        if stage == MissionStage.COMPLETED:
            self.missions.pop(mission_id, None)
            await self._decide(self.core.mission_ended(mission_id))

    async def _decide(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Assigned):
                await self._persist_assigned(decision)
            elif isinstance(decision, Queued):
                await self._persist_queued(decision)

    async def _persist_assigned(self, decision: Assigned) -> None:
        now = datetime.now(UTC)
        try:
            async with transaction(self.infra.sessions) as session:
                incident = await session.get(IncidentRow, decision.incident_id)
                if incident is None:
                    return
                if not await store.record_assigned(session, decision=decision, at=now):
                    return
                kind = dispatch_pb2.DECISION_KIND_ASSIGNED
                self._decision_record(session, decision.incident_id, kind, incident, decision)
                for a in decision.assignments:
                    track = MissionTrack(
                        decision.incident_id,
                        a.drone_id,
                        incident.lon,
                        incident.lat,
                        MissionStage.ASSIGNED,
                    )
                    self.missions[a.mission_id] = track
                    self._command(
                        session,
                        a.drone_id,
                        a.mission_id,
                        command_pb2.COMMAND_KIND_LAUNCH,
                        target=(incident.lon, incident.lat),
                        hold_seconds=incident.on_scene_seconds,
                        nest_id=a.from_nest_id,
                    )
                    self._mission_event(session, a.mission_id, track, MissionStage.ASSIGNED, "")
        except IntegrityError:
            # The database already has this drone on another mission (another replica, or a
            # stale view): give the slots back and let the queue try again.
            log.error(
                "assignment refused by the database", extra={"incident_id": decision.incident_id}
            )
            for a in decision.assignments:
                self.missions.pop(a.mission_id, None)
                self.core.mission_ended(a.mission_id)
            return
        DECISIONS.labels("assigned").inc()
        self.relay.notify()
        for a in decision.assignments:
            log.info(
                "drone assigned",
                extra={
                    "incident_id": decision.incident_id,
                    "drone_id": a.drone_id,
                    "mission_id": a.mission_id,
                    "eta_seconds": a.eta_seconds,
                },
            )

    async def _persist_queued(self, decision: Queued) -> None:
        async with transaction(self.infra.sessions) as session:
            incident = await session.get(IncidentRow, decision.incident_id)
            if incident is None:
                return
            changed = await store.record_queued(
                session,
                incident_id=decision.incident_id,
                reason=decision.reason,
                at=datetime.now(UTC),
            )
            if not changed:
                return
            kind = dispatch_pb2.DECISION_KIND_QUEUED
            self._decision_record(
                session, decision.incident_id, kind, incident, None, decision.reason
            )
        DECISIONS.labels("queued").inc()
        self.relay.notify()
        log.info(
            "incident queued",
            extra={"incident_id": decision.incident_id, "reason": decision.reason},
        )

    # -- outbox records ------------------------------------------------------------------------

    def _decision_record(
        self,
        session: Any,
        incident_id: str,
        kind: int,
        incident: IncidentRow,
        assigned: Assigned | None,
        reason: str = "",
    ) -> None:
        message = dispatch_pb2.DispatchDecision(
            decision_id=uuid.uuid4().hex,
            incident_id=incident_id,
            kind=kind,  # type: ignore[arg-type]
            reason=reason,
            priority=incident.priority,
            incident_accepted_time_ms=int(incident.accepted_at.timestamp() * 1000),
            decided_time_ms=int(time.time() * 1000),
        )
        for a in assigned.assignments if assigned else ():
            message.assignments.add(
                mission_id=a.mission_id,
                drone_id=a.drone_id,
                slot=a.slot,
                eta_seconds=a.eta_seconds,
                from_nest_id=a.from_nest_id,
            )
        enqueue(
            session,
            service="dispatch",
            topic=DISPATCH_DECISIONS,
            key=incident_id,
            ce_type="airgrid.dispatch.decision",
            payload=message.SerializeToString(),
            ce_id=message.decision_id,
        )

    def _command(
        self,
        session: Any,
        drone_id: str,
        mission_id: str,
        kind: int,
        *,
        target: tuple[float, float] | None = None,
        hold_seconds: int = 0,
        nest_id: str = "",
    ) -> None:
        command = command_pb2.DroneCommand(
            command_id=uuid.uuid4().hex,
            drone_id=drone_id,
            mission_id=mission_id,
            kind=kind,  # type: ignore[arg-type]
            hold_seconds=hold_seconds,
            nest_id=nest_id,
            issued_time_ms=int(time.time() * 1000),
        )
        if target is not None:
            command.target_lon, command.target_lat = target
            spec = self.specs.get(drone_id)
            command.target_alt_m = spec.cruise_altitude_m if spec else 120.0
        enqueue(
            session,
            service="dispatch",
            topic=DRONE_COMMANDS,
            key=drone_id,
            ce_type="airgrid.drone.command",
            payload=command.SerializeToString(),
            ce_id=command.command_id,
        )

    def _mission_event(
        self, session: Any, mission_id: str, track: MissionTrack, stage: MissionStage, reason: str
    ) -> None:
        event = mission_pb2.MissionEvent(
            mission_id=mission_id,
            incident_id=track.incident_id,
            drone_id=track.drone_id,
            stage=_STAGE_PROTO[stage],
            event_time_ms=int(time.time() * 1000),
            reason=reason,
        )
        enqueue(
            session,
            service="dispatch",
            topic=MISSION_EVENTS,
            key=mission_id,
            ce_type="airgrid.mission.event",
            payload=event.SerializeToString(),
            ce_id=f"{mission_id}:{stage.value}",
        )
