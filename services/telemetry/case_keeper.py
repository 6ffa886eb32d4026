"""The case keeper: consumes airgrid.detections, merges each detection into a case by the
pure rule (domain/cases.py), publishes every change as a CaseEvent on airgrid.cases and as a
feed item (case.opened, case.updated) on each owner department's feed, and stores the cases.

Restart-safe: a batch's events are acknowledged by the broker, then its cases and the
detections they counted are written in one transaction, then its offsets are committed. A
replayed detection that already counted is dropped (case_detections); one whose first run
stopped before the write is merged again from the stored cases, so it yields the same case
ids, versions and event ids (`<case id>:<version>`) as before.

One keeper holds the merge state of every scenario: it expects to be the only member of its
consumer group (one telemetry replica runs it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from airgrid.bus import ConsumerSpec, Producer, TopicView, run_batches, start_group_consumer
from airgrid.config import Settings
from airgrid.reference import EscalationSpec, ScenarioSpec
from airgrid.topics import DETECTIONS
from airgrid.v1 import inspection_pb2, registry_pb2
from services.telemetry.case_publisher import CaseChange, publish_case_changes
from services.telemetry.case_store import counted, joinable_cases, locked_cases, save_cases
from services.telemetry.detection_ingest import SCENARIO_PREFIX
from services.telemetry.domain.cases import Case, CaseIndex, Merge, Sighting
from services.telemetry.domain.validation import MAX_AGE_MS
from services.telemetry.metrics import CASES_CHANGED, count_case_opened, initialise_case_labels

log = logging.getLogger("airgrid.telemetry")

CONSUMER = "airgrid-case-keeper"
# Detections older than this were refused at ingest, so no later one joins a case whose
# window closed before the newest sighting less this much.
LATENESS_MS = MAX_AGE_MS
# Cases seen within this long are loaded at start whatever their scenario's window (windows
# are minutes to hours); the index expires the rest with the first batch.
RELOAD_SPAN_MS = 24 * 3_600_000


def scenario_spec(scenario: registry_pb2.Scenario) -> ScenarioSpec:
    rule = None
    if scenario.HasField("escalation"):
        rule = EscalationSpec(
            scenario.escalation.min_confidence,
            scenario.escalation.incident_type,
            scenario.escalation.priority,
        )
    return ScenarioSpec(
        code=scenario.code,
        name=scenario.name,
        departments=tuple(scenario.departments),
        severity=scenario.severity,
        merge_radius_m=scenario.merge_radius_m,
        merge_window_s=int(scenario.merge_window_s),
        escalation=rule,
        description=scenario.description,
    )


def catalogue(registry: TopicView) -> dict[str, ScenarioSpec]:
    specs = {}
    for key, change in list(registry.items.items()):
        if key.startswith(SCENARIO_PREFIX) and change is not None and not change.deleted:
            if change.HasField("scenario"):
                specs[change.scenario.code] = scenario_spec(change.scenario)
    return specs


class CaseKeeper:
    def __init__(
        self,
        *,
        settings: Settings,
        producer: Producer,
        registry: TopicView,
        engine: AsyncEngine,
        clock: Callable[[], int],
        escalate: Callable[[Case, ScenarioSpec], None] | None = None,
    ) -> None:
        """escalate: handed every stored change (the escalator's `consider`); must not block."""
        self.settings = settings
        self.escalate = escalate
        self.producer = producer
        self.registry = registry
        self.engine = engine
        self.clock = clock
        self.index = CaseIndex(scenarios={})
        self.loaded = False
        self.spec = ConsumerSpec(topics=[DETECTIONS], group_id=CONSUMER, max_records=500)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        # A detection of a scenario the view does not know yet would be dropped.
        await self.registry.caught_up.wait()
        initialise_case_labels(catalogue(self.registry).values())
        consumer = await start_group_consumer(self.settings, self.spec)
        try:
            await run_batches(consumer, self.handle, spec=self.spec, name=CONSUMER, stop=stop)
        finally:
            await consumer.stop()

    async def _load(self) -> None:
        """The joinable cases from the database: the state every replay starts from."""
        held, members = await joinable_cases(
            self.engine, seen_since_ms=self.clock() - LATENESS_MS - RELOAD_SPAN_MS
        )
        self.index = CaseIndex(scenarios={}, cases={c.id: c for c in held}, members=dict(members))
        self.loaded = True

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if not self.loaded:
            await self._load()
        try:
            await self._handle(records)
        except BaseException:
            self.loaded = False  # the retry starts again from what the database holds
            raise

    async def _handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        detections = []
        for record in records:
            try:
                detections.append(inspection_pb2.Detection.FromString(record.value or b""))
            except Exception:  # ingest produced it; a bad one is skipped, never a crash
                log.warning("undecodable detection skipped", extra={"offset": record.offset})
        done = await counted(self.engine, [d.id for d in detections])
        self.index.scenarios.update(catalogue(self.registry))
        async with self.engine.begin() as connection:
            merges, newest = await self._merge(connection, detections, done)
        if not merges:
            return
        changed = {m.case.id: m.case for m, _ in merges}
        if self.escalate is not None:
            for case in changed.values():
                self.escalate(case, self.index.scenarios[case.scenario])
        for merge, detection_id in merges:
            CASES_CHANGED.labels("opened" if merge.opened else "updated").inc()
            if merge.opened:
                count_case_opened(merge.case.scenario, merge.case.departments)
            log.info(
                "case opened" if merge.opened else "case updated",
                extra={"case_id": merge.case.id, "detection_id": detection_id},
            )
        self.index.expire(newest - LATENESS_MS)

    async def _merge(
        self,
        connection: AsyncConnection,
        detections: list[inspection_pb2.Detection],
        done: set[str],
    ) -> tuple[list[tuple[Merge, str]], int]:
        """Merge the batch into the cases as stored now, held locked until the changes are
        published and saved: statuses change over REST too, and a joining detection must
        neither reopen an acknowledged case nor reuse a version a transition wrote. Also
        the newest observed time merged."""
        for case in await locked_cases(connection, list(self.index.cases)):
            self.index.update(case)
        merges: list[tuple[Merge, str]] = []
        newest = 0
        for detection in detections:
            if detection.id in done:
                continue
            if detection.scenario not in self.index.scenarios:
                log.warning(
                    "detection of a scenario no longer in the catalogue skipped",
                    extra={"detection_id": detection.id, "scenario": detection.scenario},
                )
                continue
            result = self.index.add(_sighting(detection))
            if result is None:
                continue
            merges.append((result, detection.id))
            newest = max(newest, detection.observed_time_ms)
        if merges:
            changes = [
                CaseChange(merge.case, opened=merge.opened, detection_id=detection_id)
                for merge, detection_id in merges
            ]
            await publish_case_changes(self.producer, changes, now_ms=self.clock())
            await save_cases(
                connection,
                {m.case.id: m.case for m, _ in merges}.values(),
                [(detection_id, m.case.id) for m, detection_id in merges],
            )
        return merges, newest


def _sighting(detection: inspection_pb2.Detection) -> Sighting:
    return Sighting(
        detection_id=detection.id,
        scenario=detection.scenario,
        confidence=detection.confidence,
        lon=detection.lon,
        lat=detection.lat,
        observed_ms=detection.observed_time_ms,
        media_uri=detection.media.uri,
        media_sha256=detection.media.sha256,
    )
