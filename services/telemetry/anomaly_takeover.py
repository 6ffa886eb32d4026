"""Taking drones over (start-up or rebalance): the anomaly detector of the worker that now owns
a drone's raw-topic partition is seeded from the live state, the track and the saved alerts."""

from __future__ import annotations

from collections.abc import Collection

from aiokafka.partitioner import murmur2
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.bus import TopicView
from services.telemetry.alert_state import last_tracked, raised_alerts
from services.telemetry.domain.anomalies import AnomalyDetector, LastSeen


def raw_partition(drone_id: str, count: int) -> int:
    """The raw-topic partition of a drone's records (the default murmur2 partitioner's pick
    for its key, as every producer of the topic uses)."""
    hashed: int = murmur2(drone_id.encode())
    return (hashed & 0x7FFFFFFF) % count


async def restore_anomalies(
    anomalies: AnomalyDetector,
    engine: AsyncEngine,
    *,
    drones: Collection[str],
    states: TopicView,
    partitions: Collection[int],
    count: int,
) -> dict[str, int]:
    """Seeds, for each drone of `partitions` (of `count`) the detector does not watch yet,
    when it was last heard of (the newer of its live state and its newest track point:
    the track survives an empty broker) and which of its alerts are raised (saved once
    acknowledged). Then link lost fires for a drone silent across the take-over, and a
    condition already alerted is not raised again. Returns the raw-topic partition of each
    drone seeded."""
    candidates = {
        drone_id
        for drone_id in drones
        if not anomalies.knows(drone_id) and raw_partition(drone_id, count) in partitions
    }
    if not candidates:
        return {}
    tracked = await last_tracked(engine, candidates)
    raised = await raised_alerts(engine, candidates)
    seeded: dict[str, int] = {}
    for drone_id in candidates:
        last = tracked.get(drone_id)
        state = states.items.get(drone_id)
        if state is not None and (last is None or state.event_time_ms > last.event_time_ms):
            last = LastSeen(state.event_time_ms, state.lon, state.lat)
        if last is None:  # never heard of: nothing to judge
            continue
        anomalies.restore(drone_id, last, raised.get(drone_id, ()))
        seeded[drone_id] = raw_partition(drone_id, count)
    return seeded
