"""Integration (real broker, real PostgreSQL): a worker that takes drones over restores their
anomaly state. A drone that went silent shortly before its worker stopped gets its link-lost
alert from the next worker; an alert raised before the stop is not raised again; and the
alert state is saved only after the broker acknowledged the alert."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from airgrid.bus import Producer, TopicView, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.topics import ALERTS
from airgrid.v1 import alert_pb2
from services.telemetry.models import drone_alert_state
from tests.eventually import until
from tests.integration.telemetry_rig import (
    DEADLINE_S,
    RunningWorker,
    register_drones,
    send_cruising,
)

pytestmark = pytest.mark.integration


async def test_a_drone_silent_across_a_worker_restart_gets_link_lost_once_and_no_alert_twice(
    fresh_prefix: Settings,
) -> None:
    settings = fresh_prefix
    await ensure_topics(settings)
    producer = Producer(settings, source="airgrid/test")
    await producer.start()
    run = uuid.uuid4().hex[:6]
    quiet, low, busy = f"dr-quiet-{run}", f"dr-low-{run}", f"dr-busy-{run}"
    await register_drones(producer, [quiet, low, busy])
    alerts: list[alert_pb2.Alert] = []
    watcher = TopicView(
        settings,
        ALERTS,
        alert_pb2.Alert.FromString,
        on_update=lambda _key, alert: alerts.append(alert),
    )
    await watcher.start()

    def active(drone_id: str, kind: int) -> list[alert_pb2.Alert]:
        return [a for a in alerts if a.drone_id == drone_id and a.kind == kind and a.active]

    engine = create_engine(settings)
    first = RunningWorker(settings, producer)
    second = RunningWorker(settings, producer)
    try:
        # Before the restart: `quiet` reports for the last time 5 s before the stop (event
        # time), `low` is under the battery threshold and alerted.
        start = now_ms() - 60_000
        await first.start()
        for seq in range(1, 4):
            await send_cruising(producer, quiet, seq, start + seq * 1_000, 80.0)
            await send_cruising(producer, low, seq, start + seq * 1_000, 10.0)
            await send_cruising(producer, busy, seq, start + seq * 1_000, 80.0)
        await producer.flush()
        await until(
            lambda: len(active(low, alert_pb2.ALERT_KIND_LOW_BATTERY)) == 1,
            DEADLINE_S,
            "low battery alert",
        )
        await until(lambda: first.last_seq(quiet) == 3, DEADLINE_S, "quiet's last record applied")

        async def saved() -> set[tuple[str, str, bool]]:
            async with engine.connect() as connection:
                rows = (
                    await connection.execute(
                        sa.select(
                            drone_alert_state.c.drone_id,
                            drone_alert_state.c.kind,
                            drone_alert_state.c.active,
                        ).where(drone_alert_state.c.drone_id.in_([quiet, low, busy]))
                    )
                ).all()
            return {(r[0], r[1], r[2]) for r in rows}

        # Acknowledged, so saved for the next owner (the worker's stop drains the writer).
        await first.stop()
        assert first.worker.pending_alerts == 0
        assert await saved() == {(low, "low_battery", True)}
        assert active(quiet, alert_pb2.ALERT_KIND_LINK_LOST) == []

        # After the restart only `low` (still low) and `busy` report, 40 s of event time on.
        await second.start()
        for seq in range(4, 7):
            await send_cruising(producer, low, seq, start + 40_000 + seq * 1_000, 10.0)
            await send_cruising(producer, busy, seq, start + 40_000 + seq * 1_000, 80.0)
        await producer.flush()
        await until(
            lambda: len(active(quiet, alert_pb2.ALERT_KIND_LINK_LOST)) == 1,
            DEADLINE_S,
            "the link-lost alert of the drone silent across the restart",
        )
        await until(
            lambda: second.last_seq(low) == 6, DEADLINE_S, "low's records after the restart"
        )
        await until(
            lambda: second.worker.pending_alerts == 0, DEADLINE_S, "every alert acknowledged"
        )
    finally:
        await second.stop()
        await watcher.stop()
        await producer.stop()

    lost = active(quiet, alert_pb2.ALERT_KIND_LINK_LOST)
    assert len(lost) == 1 and lost[0].event_time_ms > start + 3_000 + 15_000
    # Raised before the restart and still true: not raised again by the new worker.
    assert len(active(low, alert_pb2.ALERT_KIND_LOW_BATTERY)) == 1
    assert active(busy, alert_pb2.ALERT_KIND_LINK_LOST) == []
    try:
        assert await saved() == {(low, "low_battery", True), (quiet, "link_lost", True)}
    finally:
        await engine.dispose()
