"""The telemetry benchmark's input: drone ids, encoded telemetry records, the registry and
missions seeded for them, and the records produced before a round."""

from __future__ import annotations

from airgrid.bus import (
    Producer,
    now_ms,
)
from airgrid.config import Settings
from airgrid.topics import (
    DEPARTMENT_CODES,
    INCIDENTS,
    MISSION_EVENTS,
    REGISTRY_CHANGES,
    TELEMETRY_RAW,
)
from airgrid.v1 import incident_pb2, mission_pb2, registry_pb2, telemetry_pb2


def drone_ids(count: int) -> list[str]:
    return [f"bench-dr-{i:05d}" for i in range(count)]


def telemetry_value(drone_id: str, seq: int, event_time_ms: int, mission_id: str) -> bytes:
    index = int(drone_id.rsplit("-", 1)[-1])
    return telemetry_pb2.Telemetry(
        drone_id=drone_id,
        seq=seq,
        event_time_ms=event_time_ms,
        lon=121.3 + (index % 100) * 0.003 + seq * 1e-6,
        lat=31.1 + (index // 100) * 0.003,
        alt_m=80.0,
        ground_speed_mps=12.0,
        heading_deg=90.0,
        battery_pct=80.0,
        flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
        mission_id=mission_id,
    ).SerializeToString()


def missions_of(drones: list[str], fraction: float) -> dict[str, str]:
    on_mission = drones[: int(len(drones) * fraction)]
    return {drone_id: f"bench-m-{drone_id}" for drone_id in on_mission}


async def seed(settings: Settings, drones: list[str], missions: dict[str, str]) -> None:
    producer = Producer(settings, source="airgrid/bench")
    await producer.start()
    try:
        for drone_id in drones:
            change = registry_pb2.RegistryChange(
                entity_id=drone_id,
                version=1,
                drone=registry_pb2.Drone(id=drone_id, home_nest="bench-nest", status="active"),
            )
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=drone_id, ce_type="bench"
            )
        for i, (drone_id, mission_id) in enumerate(missions.items()):
            department = DEPARTMENT_CODES[i % len(DEPARTMENT_CODES)]
            incident_id = f"bench-inc-{i}"
            incident = incident_pb2.IncidentEvent(
                accepted=incident_pb2.Incident(id=incident_id, department=department)
            )
            await producer.send(
                INCIDENTS, incident.SerializeToString(), key=incident_id, ce_type="bench"
            )
            mission = mission_pb2.MissionEvent(
                mission_id=mission_id, incident_id=incident_id, drone_id=drone_id
            )
            await producer.send(
                MISSION_EVENTS, mission.SerializeToString(), key=mission_id, ce_type="bench"
            )
        await producer.flush()
    finally:
        await producer.stop()


async def preproduce(
    settings: Settings, drones: list[str], missions: dict[str, str], records: int
) -> int:
    """Produces `records` records, round-robin over the drones; returns the next seq."""
    producer = Producer(settings, source="airgrid/bench")
    await producer.start()
    seq = 0
    try:
        sent = 0
        while sent < records:
            seq += 1
            stamp = now_ms()
            for drone_id in drones:
                if sent >= records:
                    break
                value = telemetry_value(drone_id, seq, stamp, missions.get(drone_id, ""))
                await producer.send(TELEMETRY_RAW, value, key=drone_id, ce_type="bench")
                sent += 1
            await producer.flush()
    finally:
        await producer.stop()
    return seq + 1
