"""A relay chain end to end, against the real PostgreSQL and broker: an hour-long fire with
drones that cannot stay that long gets a drone within its SLA, then a relief before the first
drone must turn home with its reserve, across a restart of the dispatch worker, and the first
drone is ordered home when the relief reaches the scene. The drones are driven by their state
reports on the drone-state topic, as the twin and the gateways report them."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from airgrid.auth import Role
from airgrid.bus import (
    Producer,
    client_options,
    ensure_topics,
    now_ms,
    topic_name,
    topic_partitions,
)
from airgrid.config import Settings
from airgrid.reference import DroneSpec, load_reference
from airgrid.topics import ALERTS, DRONE_COMMANDS, DRONE_STATE, MISSION_EVENTS, REGISTRY_CHANGES
from airgrid.v1 import (
    alert_pb2,
    command_pb2,
    drone_state_pb2,
    mission_pb2,
    registry_pb2,
    telemetry_pb2,
)
from services.dispatch.app import build_app
from tests.builders import incident_body
from tests.databases import database_of_its_own
from tests.eventually import eventually
from tests.integration.test_dispatch_flow import credential

pytestmark = pytest.mark.integration

REFERENCE = load_reference()
NEST = REFERENCE.nests[0]
FLEET = [d for d in REFERENCE.drones if d.home_nest == NEST.id][:3]
SCENE = (NEST.lon + 0.005, NEST.lat + 0.003)
ENDURANCE_S = 1800.0  # 30 min of flight: no drone can hold the fire's hour on scene
ON_SCENE_S = 3600
RESERVE_PCT = 20.0
SLA_S = 300.0
HOLDER_BATTERY_PCT = 33.0  # reported on scene: the holder must turn home within minutes

T = TypeVar("T")


@pytest.fixture
async def own_database(settings: Settings) -> AsyncIterator[Settings]:
    """A database of this test's own: dispatch restores every open incident it finds, and
    the hour-long fire stays open."""
    async with database_of_its_own(settings, "relay") as own:
        yield own.model_copy(
            update={"topic_prefix": f"rl{uuid.uuid4().hex[:8]}.", "patrol_enabled": False}
        )


async def publish_fleet(settings: Settings, fleet: list[DroneSpec] = FLEET) -> None:
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        nest = registry_pb2.Nest(
            id=NEST.id, name=NEST.name, lon=NEST.lon, lat=NEST.lat, charging_slots=6,
            status="online", wind_hold_mps=12.0,
        )  # fmt: skip
        change = registry_pb2.RegistryChange(entity_id=NEST.id, nest=nest)
        await producer.send(
            REGISTRY_CHANGES,
            change.SerializeToString(),
            key=NEST.id,
            ce_type="airgrid.registry.nest",
        )
        for d in fleet:
            drone = registry_pb2.Drone(
                id=d.id, model=d.model, home_nest=d.home_nest, capabilities=d.capabilities,
                cruise_speed_mps=d.cruise_speed_mps, max_speed_mps=d.max_speed_mps,
                climb_rate_mps=d.climb_rate_mps, cruise_altitude_m=d.cruise_altitude_m,
                endurance_s=ENDURANCE_S, launch_delay_s=d.launch_delay_s, status="active",
            )  # fmt: skip
            change = registry_pb2.RegistryChange(entity_id=d.id, drone=drone)
            await producer.send(
                REGISTRY_CHANGES, change.SerializeToString(), key=d.id,
                ce_type="airgrid.registry.drone",
            )  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()
    for d in fleet:
        await report(settings, d.id, (NEST.lon, NEST.lat), 100.0, "docked")


_MODES = {
    "docked": telemetry_pb2.FLIGHT_MODE_DOCKED,
    "cruising": telemetry_pb2.FLIGHT_MODE_CRUISING,
    "hovering": telemetry_pb2.FLIGHT_MODE_HOVERING,
}
_seq: dict[str, int] = {}


async def report(
    settings: Settings,
    drone_id: str,
    at: tuple[float, float],
    battery_pct: float,
    mode: str,
    mission_id: str = "",
) -> None:
    """A drone's state on the drone-state topic, as telemetry publishes it."""
    _seq[drone_id] = _seq.get(drone_id, 0) + 1
    state = drone_state_pb2.DroneState(
        drone_id=drone_id, last_seq=_seq[drone_id], event_time_ms=now_ms(), lon=at[0], lat=at[1],
        battery_pct=battery_pct, flight_mode=_MODES[mode],
        nest_id=NEST.id if mode == "docked" else "", mission_id=mission_id, link_ok=True,
        alt_m=0.0 if mode == "docked" else 120.0,
    )  # fmt: skip
    producer = Producer(settings, source="tests")
    await producer.start()
    try:
        await producer.send(
            DRONE_STATE, state.SerializeToString(), key=drone_id, ce_type="airgrid.drone.state"
        )
        await producer.flush()
    finally:
        await producer.stop()


def must_leave_within_s(battery_pct: float) -> float:
    """How long a drone on scene with this battery may stay before it must turn home to land
    with its reserve (the way home at cruise speed and the descent)."""
    spec = FLEET[0]
    lon0, lat0 = NEST.lon, NEST.lat
    dx = (SCENE[0] - lon0) * 111_320.0 * math.cos(math.radians(lat0))
    dy = (SCENE[1] - lat0) * 110_540.0
    back_s = (
        math.hypot(dx, dy) / spec.cruise_speed_mps + spec.cruise_altitude_m / spec.climb_rate_mps
    )
    return (battery_pct - RESERVE_PCT) / 100.0 * ENDURANCE_S - back_s


@asynccontextmanager
async def dispatch_running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        worker = app.state.worker

        async def ready() -> bool | None:
            return True if worker.status.check() == "ok" else None

        await eventually(ready, 120, "the dispatch worker to be ready")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dispatch") as client:
            yield client


async def read_topic(
    settings: Settings, topic: Any, parse: Callable[[bytes], T], found: Callable[[T], bool]
) -> T:
    """The first record of the topic (from its beginning) that `found` accepts."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic_name(settings, topic))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def check() -> T | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    value = parse(record.value or b"")
                    if found(value):
                        return value
            return None

        return await eventually(check, 30, f"a record on {topic.name}")
    finally:
        await consumer.stop()


async def post_fire(client: httpx.AsyncClient, auth: dict[str, str]) -> str:
    r = await client.post(
        "/v1/incidents",
        json=incident_body(
            priority=1,
            location={"type": "Point", "coordinates": list(SCENE)},
            on_scene_seconds=ON_SCENE_S,
            description="warehouse fire, an hour of overwatch",
        ),
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_long_fire_is_relayed_and_the_first_drone_sent_home_across_a_restart(
    own_database: Settings,
) -> None:
    s = own_database
    await ensure_topics(s)
    await publish_fleet(s)
    auth = {"Authorization": f"Bearer {await credential(s, Role.DEPARTMENT, 'fire')}"}

    async def incident(client: httpx.AsyncClient, incident_id: str) -> dict[str, Any]:
        r = await client.get(f"/v1/incidents/{incident_id}", headers=auth)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async with dispatch_running(s) as client:
        fire_id = await post_fire(client, auth)

        async def first_drone() -> dict[str, Any] | None:
            data = await incident(client, fire_id)
            return data["missions"][0] if data["missions"] else None

        holder = await eventually(first_drone, 30, "a drone for the hour-long fire")
        assert holder["eta_seconds"] < SLA_S, "the first drone misses the SLA"
        assert holder["relieves"] is None

        # The holder reaches the scene with a third of its battery: it must turn home soon.
        await report(
            s, holder["drone_id"], SCENE, HOLDER_BATTERY_PCT, "hovering", holder["mission_id"]
        )
        on_scene_at = time.monotonic()

        async def relief_assigned() -> dict[str, Any] | None:
            data = await incident(client, fire_id)
            reliefs = [m for m in data["missions"] if m["relieves"] == holder["mission_id"]]
            return reliefs[0] if reliefs else None

        relief = await eventually(relief_assigned, 60, "a relief of the drone on scene")
        assert time.monotonic() - on_scene_at < must_leave_within_s(HOLDER_BATTERY_PCT)
        data = await incident(client, fire_id)
        assert data["status"] == "on_scene"
        assert {m["mission_id"]: m["stage"] for m in data["missions"]} == {
            holder["mission_id"]: "on_scene",
            relief["mission_id"]: "assigned",
        }
        assert relief["drone_id"] != holder["drone_id"]

    # The worker restarts while the relief flies: the restored core keeps the chain (no
    # second relief, and the hand-over still happens on arrival).
    async with dispatch_running(s) as client:
        await report(s, relief["drone_id"], SCENE, 95.0, "hovering", relief["mission_id"])

        async def handed_over() -> dict[str, Any] | None:
            data = await incident(client, fire_id)
            stages = {m["mission_id"]: m["stage"] for m in data["missions"]}
            return data if stages.get(holder["mission_id"]) == "returning" else None

        data = await eventually(handed_over, 60, "the drone on scene sent home")
        chain = {m["mission_id"]: m for m in data["missions"]}
        assert set(chain) == {holder["mission_id"], relief["mission_id"]}, "a second relief"
        assert chain[relief["mission_id"]]["stage"] == "on_scene"
        assert chain[relief["mission_id"]]["relieves"] == holder["mission_id"]
        assert data["status"] == "on_scene"

    went_home = await read_topic(
        s,
        DRONE_COMMANDS,
        command_pb2.DroneCommand.FromString,
        lambda c: c.drone_id == holder["drone_id"] and c.kind == command_pb2.COMMAND_KIND_RETURN,
    )
    assert went_home.mission_id == holder["mission_id"]
    returning = await read_topic(
        s,
        MISSION_EVENTS,
        mission_pb2.MissionEvent.FromString,
        lambda e: (
            e.mission_id == holder["mission_id"] and e.stage == mission_pb2.MISSION_STAGE_RETURNING
        ),
    )
    assert returning.reason == f"relieved on scene by mission {relief['mission_id']}"
    assigned = await read_topic(
        s,
        MISSION_EVENTS,
        mission_pb2.MissionEvent.FromString,
        lambda e: (
            e.mission_id == relief["mission_id"] and e.stage == mission_pb2.MISSION_STAGE_ASSIGNED
        ),
    )
    assert assigned.relieves == holder["mission_id"]


async def test_a_chain_nobody_can_relieve_says_so_before_the_drone_must_leave(
    own_database: Settings,
) -> None:
    """One drone: it takes the hour-long fire as the first link of a chain; on scene with a
    third of its battery and nobody to relieve it, the incident's reason says relay at risk
    and the alert is on the alerts topic and in the metrics before it must turn home."""
    s = own_database
    await ensure_topics(s)
    await publish_fleet(s, FLEET[:1])
    auth = {"Authorization": f"Bearer {await credential(s, Role.DEPARTMENT, 'fire')}"}
    async with dispatch_running(s) as client:
        fire_id = await post_fire(client, auth)

        async def first_drone() -> dict[str, Any] | None:
            r = await client.get(f"/v1/incidents/{fire_id}", headers=auth)
            missions: list[dict[str, Any]] = r.json()["missions"]
            return missions[0] if missions else None

        holder = await eventually(first_drone, 30, "a drone for the hour-long fire")
        await report(
            s, holder["drone_id"], SCENE, HOLDER_BATTERY_PCT, "hovering", holder["mission_id"]
        )
        on_scene_at = time.monotonic()

        async def at_risk() -> str | None:
            r = await client.get(f"/v1/incidents/{fire_id}", headers=auth)
            reason = r.json()["status_reason"] or ""
            return reason if reason.startswith("relay at risk") else None

        await eventually(at_risk, 60, "the incident's reason to say relay at risk")
        assert time.monotonic() - on_scene_at < must_leave_within_s(HOLDER_BATTERY_PCT)
        metrics = (await client.get("/metrics")).text
        counted = [
            line
            for line in metrics.splitlines()
            if line.startswith("airgrid_sla_alerts_total{")
            and 'kind="relay_at_risk"' in line
            and 'department="fire"' in line
            and 'priority="1"' in line
        ]
        assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, counted
    alert = await read_topic(
        s,
        ALERTS,
        alert_pb2.Alert.FromString,
        lambda a: a.incident_id == fire_id and a.kind == alert_pb2.ALERT_KIND_RELAY_AT_RISK,
    )
    assert alert.severity == alert_pb2.SEVERITY_WARNING and alert.active


async def test_each_link_of_a_chain_gets_its_own_relay_at_risk(own_database: Settings) -> None:
    """Two drones, the second one low at first: the drone on scene is at risk (alert, reason);
    the second one charged relieves it (the reason clears); on scene with a third of its
    battery, nobody can relieve it either (the first one is low, heading home): a second
    alert, for the second link, and the reason again."""
    s = own_database
    await ensure_topics(s)
    first_spec, second_spec = FLEET[:2]
    await publish_fleet(s, [first_spec, second_spec])
    await report(s, second_spec.id, (NEST.lon, NEST.lat), 25.0, "docked")
    auth = {"Authorization": f"Bearer {await credential(s, Role.DEPARTMENT, 'fire')}"}

    async def reason(client: httpx.AsyncClient, fire_id: str) -> str:
        r = await client.get(f"/v1/incidents/{fire_id}", headers=auth)
        return str(r.json()["status_reason"] or "")

    async with dispatch_running(s) as client:
        fire_id = await post_fire(client, auth)

        async def mission_of(drone_id: str) -> dict[str, Any] | None:
            r = await client.get(f"/v1/incidents/{fire_id}", headers=auth)
            found = [m for m in r.json()["missions"] if m["drone_id"] == drone_id]
            return found[0] if found else None

        holder = await eventually(lambda: mission_of(first_spec.id), 30, "the first link")
        await report(s, first_spec.id, SCENE, HOLDER_BATTERY_PCT, "hovering", holder["mission_id"])

        async def at_risk() -> bool | None:
            return True if (await reason(client, fire_id)).startswith("relay at risk") else None

        await eventually(at_risk, 60, "relay at risk for the first link")
        await report(s, second_spec.id, (NEST.lon, NEST.lat), 100.0, "docked")
        relief = await eventually(lambda: mission_of(second_spec.id), 60, "the second link")
        assert relief["relieves"] == holder["mission_id"]
        assert not (await reason(client, fire_id)).startswith("relay at risk")
        await report(s, second_spec.id, SCENE, HOLDER_BATTERY_PCT, "hovering", relief["mission_id"])
        await eventually(at_risk, 60, "relay at risk for the second link")

    # A restart restores the raised alert of the link on scene (its outbox id names it).
    async with dispatch_running(s) as client:
        assert (await reason(client, fire_id)).startswith("relay at risk")

    consumer = AIOKafkaConsumer(**client_options(s), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic_name(s, ALERTS))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        alerts: list[alert_pb2.Alert] = []

        async def two_alerts() -> bool | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    a = alert_pb2.Alert.FromString(record.value or b"")
                    if a.incident_id == fire_id and a.kind == alert_pb2.ALERT_KIND_RELAY_AT_RISK:
                        alerts.append(a)
            return True if len(alerts) >= 2 else None

        await eventually(two_alerts, 30, "a relay_at_risk alert per link")
        assert len(alerts) == 2, [a.message for a in alerts]
    finally:
        await consumer.stop()
