"""Telemetry worker: raw records from Kafka, validated, to drone state or to the DLQ."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import (
    REASON_HEADER,
    ConsumerSpec,
    Producer,
    TopicView,
    now_ms,
    start_group_consumer,
    topic_name,
)
from airgrid.config import Settings
from airgrid.observability import RECORDS_CONSUMED
from airgrid.topics import TELEMETRY_DLQ, TELEMETRY_RAW
from airgrid.v1 import drone_state_pb2, telemetry_pb2
from airgrid.worker_runs import stop_quietly
from services.telemetry import heap
from services.telemetry.alert_publisher import AlertPublisher
from services.telemetry.anomaly_takeover import restore_anomalies
from services.telemetry.batch_accounting import account_batch
from services.telemetry.domain import state as drone_state
from services.telemetry.domain.anomalies import (
    AnomalyDetector,
    AnomalyRules,
    NoFlyZone,
    Position,
    Transition,
)
from services.telemetry.domain.validation import MAX_SPEED_MPS
from services.telemetry.feed_routing import FeedRouting
from services.telemetry.metrics import TRACK_POINTS
from services.telemetry.offset_committer import CONSUMER, OffsetCommitter
from services.telemetry.service import BatchDecision, Rejected, decide_record
from services.telemetry.state_outputs import StateOutputs
from services.telemetry.topic_views import commanded_path, is_drone, no_fly_zones
from services.telemetry.track_writer import TrackWriter

log = logging.getLogger("airgrid.telemetry")

REJECTED_EVENT = "airgrid.telemetry.rejected"
MAX_BATCHES_IN_FLIGHT = 16
MAX_RECORDS_IN_FLIGHT = 32_000
# Link lost is checked whenever event time moved on by this much (it fires after 15 s).
LINK_CHECK_STEP_MS = 250
ALERT_STATE_DRAIN_SECONDS = 5.0


async def await_batch(done: asyncio.Future[Any]) -> None:
    await done


class TelemetryWorker:
    """Consumes TELEMETRY_RAW in the `airgrid-telemetry` group, at least once.

    The last applied seq per drone lives in memory, seeded from (and kept at least as high as)
    the DRONE_STATE view, so a restart or a rebalance picks up where the topic says.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        producer: Producer,
        registry: TopicView,
        states: TopicView,
        engine: AsyncEngine,
        routing: FeedRouting,
        clock: Callable[[], int] = now_ms,
        on_accepted: Callable[[list[telemetry_pb2.Telemetry]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.registry = registry
        self.states = states
        self.engine = engine
        self.routing = routing
        self.on_accepted = on_accepted  # each batch's accepted fixes (freshness)
        self.track = TrackWriter(engine)
        # The registry view's drone ids, kept as a set by its update hook (validation asks for
        # every record; a set lookup is cheaper than reading the change each time).
        self.drones: set[str] = {key for key, change in registry.items.items() if is_drone(change)}
        self.clock = clock
        self.spec = ConsumerSpec(
            topics=[TELEMETRY_RAW],
            group_id=CONSUMER,
            max_records=settings.telemetry_batch_records,
            fetch_max_wait_ms=settings.telemetry_fetch_wait_ms,
        )
        self.anomalies = AnomalyDetector(
            AnomalyRules(
                low_battery_pct=settings.low_battery_pct,
                link_lost_ms=int(settings.link_lost_seconds * 1000),
                off_route_m=settings.off_route_m,
            )
        )
        self._latest: dict[str, drone_state_pb2.DroneState] = {}
        # Per raw-topic partition: the offset up to which every record is fully processed
        # (its batch acknowledged, in read order); and after a rewind, up to where the
        # records read again were already processed (dropped as redeliveries). Offsets, not a
        # memory of ids: constant memory, nothing to read per record.
        self._processed: dict[tuple[str, int], int] = {}
        self._replay_until: dict[tuple[str, int], int] = {}
        self._last_batch_ms = clock()
        self._zones: list[NoFlyZone] | None = None
        self._link_checked_ms = 0
        self._follow_registry(registry)
        self._raw_topic = topic_name(settings, TELEMETRY_RAW)
        self.outputs = StateOutputs(settings, producer, routing)
        self._source_partition: dict[str, TopicPartition] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.alerts = AlertPublisher(producer=producer, engine=engine, routing=routing, clock=clock)
        self._taken_over: frozenset[TopicPartition] = frozenset()

    @property
    def assigned(self) -> frozenset[int]:
        """The raw-topic partitions this worker currently owns in the consumer group."""
        if self._consumer is None:
            return frozenset()
        return frozenset(tp.partition for tp in self._consumer.assignment())

    def _follow_registry(self, registry: TopicView) -> None:
        """Keeps the registered drone ids, and rebuilds the no-fly zones from the registry view
        only after a change that can alter them (a geofence, a deletion): a new zone applies
        to the next batch, and no batch walks the registry when nothing changed."""
        chained = registry.on_update

        def on_registry_change(key: str, change: Any) -> None:
            if chained is not None:
                chained(key, change)
            if is_drone(change):
                self.drones.add(key)
            else:
                self.drones.discard(key)
            if change is None or change.deleted or change.HasField("geofence"):
                self._zones = None

        registry.on_update = on_registry_change

    def processed(self, offsets: dict[TopicPartition, int]) -> None:
        """Records before `offsets` (next offset per partition) are done; call in read order."""
        for tp, offset in offsets.items():
            self._processed[(tp.topic, tp.partition)] = offset

    def on_command(self, drone_id: str, command: Any) -> None:
        """Keeps the commanded path of each drone for the off-route rule."""
        self.anomalies.set_path(drone_id, commanded_path(command))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.registry.caught_up.wait()
        await self.states.caught_up.wait()
        log.info("telemetry worker starting", extra={"drones_with_state": len(self.states.items)})
        await self.track.warm()
        heap.settle()
        consumer = await start_group_consumer(self.settings, self.spec)
        self._consumer = consumer
        ticker = asyncio.create_task(self._silence_ticker(), name="telemetry-silence")
        try:
            while stop is None or not stop.is_set():
                try:
                    await self._pipelined(consumer, stop)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("telemetry batch failed; resuming from the last commit")
                    await asyncio.sleep(1.0)
                    await self._rewind(consumer)
        finally:
            ticker.cancel()
            await stop_quietly(consumer.stop, "telemetry consumer")
            with contextlib.suppress(Exception):  # saved alert state, for the next owner
                await asyncio.wait_for(self.alerts.drain_saved(), ALERT_STATE_DRAIN_SECONDS)

    async def _pipelined(self, consumer: AIOKafkaConsumer, stop: asyncio.Event | None) -> None:
        """At least once, pipelined: the next batch is decided while earlier ones await their
        acknowledgements; offsets are committed in order, each after its batch is done, by a
        background committer (the fetch loop never waits on a commit round trip).
        At most MAX_BATCHES_IN_FLIGHT batches and about MAX_RECORDS_IN_FLIGHT records wait:
        that bounds memory and pushes back on the fetch loop."""
        in_flight: deque[tuple[asyncio.Future[Any], dict[TopicPartition, int], int]] = deque()
        waiting = 0
        committer = OffsetCommitter(consumer)
        try:
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self.spec.timeout_ms if not in_flight else 2,
                    max_records=self.spec.max_records,
                )
                if consumer.assignment() != self._taken_over:
                    await self.take_over(consumer)
                if batches:
                    records = [r for partition in batches.values() for r in partition]
                    offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
                    in_flight.append((await self.start_batch(records), offsets, len(records)))
                    waiting += len(records)
                while in_flight and (
                    in_flight[0][0].done()
                    or len(in_flight) > MAX_BATCHES_IN_FLIGHT
                    or waiting > MAX_RECORDS_IN_FLIGHT
                ):
                    done, offsets, count = in_flight.popleft()
                    await done
                    self.processed(offsets)
                    committer.add(offsets)
                    waiting -= count
            while in_flight:
                done, offsets, _ = in_flight.popleft()
                await done
                self.processed(offsets)
                committer.add(offsets)
            await committer.drain()
        except BaseException:
            for done, _, _ in in_flight:
                done.cancel()
            committer.cancel()
            raise

    async def _rewind(self, consumer: AIOKafkaConsumer) -> None:
        """After a failed batch: forget what was decided but not acknowledged, and read again
        from the committed offsets."""
        self._latest.clear()
        self._replay_until.clear()
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:  # no commit (or a broker that lost its data): no replay bound
                await consumer.seek_to_beginning(tp)
                continue
            consumer.seek(tp, committed)
            done = self._processed.get((tp.topic, tp.partition), 0)
            if committed < done:
                self._replay_until[(tp.topic, tp.partition)] = done

    async def take_over(self, consumer: AIOKafkaConsumer) -> None:
        """After the group gave this worker partitions (start-up or rebalance): seeds the
        anomaly detector with the drones of the partitions it did not own, before their
        first records are decided."""
        assigned = frozenset(consumer.assignment())
        new = {tp.partition for tp in assigned - self._taken_over}
        self._taken_over = assigned
        if not new:
            return
        count = (
            len(consumer.partitions_for_topic(self._raw_topic) or ()) or TELEMETRY_RAW.partitions
        )
        try:
            restored = await self.restore_anomalies(new, count)
        except Exception:  # the database is down: those drones start from new records
            log.exception("anomaly state not restored for the partitions taken over")
            return
        log.info(
            "anomaly state restored",
            extra={"partitions": sorted(new), "drones": restored},
        )

    async def restore_anomalies(self, partitions: Collection[int], count: int) -> int:
        """Seeds the detector with the drones of `partitions` (of `count`) it does not watch
        yet; returns how many drones were seeded."""
        seeded = await restore_anomalies(
            self.anomalies,
            self.engine,
            drones=self.drones | self.states.items.keys(),
            states=self.states,
            partitions=partitions,
            count=count,
        )
        for drone_id, partition in seeded.items():
            self._source_partition[drone_id] = TopicPartition(self._raw_topic, partition)
        return len(seeded)

    async def _silence_ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.check_silence()
                await self.send_alerts()
            except Exception:  # a broker hiccup here must not end the worker
                log.exception("link-lost check failed; retrying")

    def _previous(self, drone_id: str) -> drone_state_pb2.DroneState | None:
        mine = self._latest.get(drone_id)
        topic = self.states.items.get(drone_id)
        if mine is None or (
            topic is not None
            and (topic.event_time_ms, topic.last_seq) > (mine.event_time_ms, mine.last_seq)
        ):
            return topic
        return mine

    async def handle(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """One batch, start to broker acknowledgement (tests and the pipelined loop share it)."""
        await await_batch(await self.start_batch(records))
        ends: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
        self.processed(ends)

    async def start_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> asyncio.Future[Any]:
        """Decides a batch, queues the track write and every output, and returns the future of
        all of them; the caller commits the batch's offsets only once that future is done.

        Every record is validated, checked by the anomaly rules and (when accepted or out of
        order) written to the track. Live state is conflated: `airgrid.drone.state` is "latest
        state per drone", so a batch publishes one state per drone, from its newest accepted
        record; the department feeds likewise get the newest position per drone per batch."""
        # A drone lives on one partition, and getmany gives each partition's records in offset
        # order: so each drone's records are processed in the order they were produced.
        now = self.clock()
        self._last_batch_ms = now
        decided = BatchDecision()
        if self._replay_until:
            records = self._without_redeliveries(records, decided)
        for record in records:
            decide_record(
                record,
                decided,
                now,
                known_drones=self.drones,
                previous=self._previous,
                max_speed_mps=self._max_speed_mps,
            )
        if self.on_accepted is not None:
            self.on_accepted(decided.accepted)
        if decided.redelivered:
            RECORDS_CONSUMED.labels(CONSUMER, "redelivered").inc(decided.redelivered)
        # The track is part of the batch: its offsets are committed only after the write, so a
        # crash replays records the (drone_id, seq) primary key already holds, never loses one.
        track_written = self.track.write(decided.track)
        transitions = self._anomalies(decided.accepted)
        states = self._conflated_states(decided, now)
        futures = await self._send(states, decided.rejected, transitions)
        self._latest.update(states)
        done = asyncio.gather(track_written, *futures)

        def account(result: asyncio.Future[Any]) -> None:
            if result.cancelled() or result.exception() is not None:
                return
            TRACK_POINTS.inc(len(decided.track))
            account_batch(len(decided.accepted), states, decided.rejected, acked_ms=self.clock())

        done.add_done_callback(account)
        return done

    def _without_redeliveries(
        self, records: list[ConsumerRecord[bytes, bytes]], decided: BatchDecision
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """After a rewind: the records read again that were processed before it are dropped;
        a partition's bound goes once its reading passed it."""
        kept = []
        replay = self._replay_until
        for record in records:
            key = (record.topic, record.partition)
            bound = replay.get(key)
            if bound is not None:
                if record.offset < bound:
                    decided.redelivered += 1
                    continue
                del replay[key]
            kept.append(record)
        return kept

    def _conflated_states(
        self, decided: BatchDecision, now: int
    ) -> dict[str, drone_state_pb2.DroneState]:
        states: dict[str, drone_state_pb2.DroneState] = {}
        source = self._source_partition
        for drone_id, (telemetry, partition) in decided.newest.items():
            states[drone_id] = drone_state.apply(
                self._previous(drone_id),
                telemetry,
                now,
                skipped_nest_id=decided.nests.get(drone_id, ""),
            )
            tp = source.get(drone_id)
            if tp is None or tp.partition != partition:
                source[drone_id] = TopicPartition(self._raw_topic, partition)
        return states

    def _anomalies(self, accepted: list[telemetry_pb2.Telemetry]) -> list[Transition]:
        zones = self._no_fly_zones()
        transitions: list[Transition] = []
        observe = self.anomalies.observe
        for record in accepted:
            position = Position(
                record.drone_id,
                record.event_time_ms,
                record.lon,
                record.lat,
                record.battery_pct,
                record.flight_mode in drone_state.AIRBORNE_MODES,
            )
            found = observe(position, zones)
            if found:
                transitions.extend(found)
        # Link lost walks every drone: done when event time moved on by LINK_CHECK_STEP_MS,
        # not for every small batch at the live rate.
        watermark = self.anomalies.watermark_ms
        if watermark - self._link_checked_ms >= LINK_CHECK_STEP_MS:
            self._link_checked_ms = watermark
            self._forget_moved_drones()
            transitions.extend(self.anomalies.advance(watermark))
        return transitions

    def _no_fly_zones(self) -> list[NoFlyZone]:
        """The registry view's no-fly zones, rebuilt after a change that can alter them."""
        if self._zones is None:
            self._zones = no_fly_zones(self.registry)
        return self._zones

    def _forget_moved_drones(self) -> None:
        """After a rebalance, drones whose partition went to another worker are that worker's
        to watch: silence here is not link loss."""
        if self._consumer is None:
            return
        assigned = self._consumer.assignment()
        moved = [d for d, tp in self._source_partition.items() if tp not in assigned]
        for drone_id in moved:
            del self._source_partition[drone_id]
        self.anomalies.forget(moved)

    async def check_silence(self) -> None:
        """Raises link lost when the whole stream is quiet: wall time stands in for event time
        only after no record at all arrived on this worker for the link-lost period."""
        now = self.clock()
        if now - self._last_batch_ms < int(self.settings.link_lost_seconds * 1000):
            return
        self._forget_moved_drones()
        transitions = self.anomalies.advance(now)
        if transitions:
            await self._send({}, [], transitions)

    def _max_speed_mps(self, drone_id: str) -> float:
        """The registered model's top speed; the validation's bound when it is not known."""
        change = self.registry.items.get(drone_id)
        if change is not None and is_drone(change) and change.drone.max_speed_mps > 0:
            return float(change.drone.max_speed_mps)
        return MAX_SPEED_MPS

    async def _send(
        self,
        states: dict[str, drone_state_pb2.DroneState],
        rejected: list[Rejected],
        transitions: list[Transition],
    ) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = []
        for transition in transitions:
            drone_id = transition.drone_id
            self.alerts.queue(
                transition,
                states.get(drone_id)
                or self._latest.get(drone_id)
                or self.states.items.get(drone_id),
            )
        if transitions or self.alerts.pending:
            await self.send_alerts()
        if states:
            futures.extend(await self.outputs.send(states))
        for rejection in rejected:
            futures.append(
                await self.producer.send(
                    TELEMETRY_DLQ,
                    rejection.record.value or b"",
                    key=rejection.drone_id,
                    ce_type=REJECTED_EVENT,
                    extra_headers=[(REASON_HEADER, rejection.rejection.reason.encode())],
                )
            )
        return futures

    async def send_alerts(self) -> None:
        """Sends every due alert; never raises (a failure leaves the alert due)."""
        await self.alerts.send_due()

    @property
    def pending_alerts(self) -> int:
        """Alerts decided but not yet acknowledged by the broker."""
        return self.alerts.pending
