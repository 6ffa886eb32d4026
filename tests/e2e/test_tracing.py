"""One incident, one trace: the three services and the MAVLink gateway as processes with
AIRGRID_TRACING=otlp, exporting over OTLP/HTTP to a receiver in this test, a simulated
MAVLink drone flying the mission. The incident's spans share one trace id and link up:
POST /v1/incidents -> outbox publish -> dispatch.decide -> command publish -> gateway
delivery; and dispatch.decide -> on-scene stage -> its publish -> telemetry's handling."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from airgrid.bus import ensure_topics
from airgrid.config import Settings
from airgrid.migrate import upgrade
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from tests.conftest import _recreate_database, free_port
from tests.e2e.conftest import RunningServices, issue_keys
from tests.e2e.otlp_collector import OtlpCollector, ReceivedSpan
from tests.e2e.test_gateways import free_udp_port, pick_drones, scene_near
from tests.eventually import eventually

pytestmark = pytest.mark.e2e

TIME_SCALE = 20.0
SYSTEM_ID = 9
SERVER = 2  # OTLP Span.SpanKind SPAN_KIND_SERVER


@pytest.fixture(scope="module")
def otlp_collector() -> Iterator[OtlpCollector]:
    collector = OtlpCollector()
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture(scope="module")
async def e2e_settings(
    settings: Settings, otlp_collector: OtlpCollector
) -> AsyncIterator[Settings]:
    """A database and topics of this module's own, and tracing on for every child process
    (they take this process's environment when they start)."""
    run = uuid.uuid4().hex[:8]
    database = f"{settings.sqlalchemy_url}_tr{run}"
    await _recreate_database(database)
    s = settings.model_copy(update={"topic_prefix": f"t{run}.", "database_url": database})
    try:
        await asyncio.to_thread(upgrade, s)
        await ensure_topics(s)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRGRID_TRACING", "otlp")
            env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_collector.traces_endpoint)
            env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: spans leave soon after they end
            yield s
    finally:
        await _recreate_database(database, create=False)


@dataclass
class Stack:
    urls: dict[str, str]
    fire_key: str
    operator_key: str
    drone_id: str
    scene: list[float]
    collector: OtlpCollector
    simulated_drone: SimulatedMavlinkDrone


@pytest.fixture(scope="module")
async def stack(
    running_services: RunningServices, otlp_collector: OtlpCollector
) -> AsyncIterator[Stack]:
    services = running_services
    (drone, nest), _ = pick_drones()
    keys = await issue_keys(services.settings, [nest.id])
    metrics_port, udp_port = free_port(), free_udp_port()
    services.spawn(
        "gateway-mavlink",
        [
            "gateway",
            "mavlink",
            "--key",
            keys.gateways[0],
            "--system",
            f"{SYSTEM_ID}={drone.id}",
            "--listen",
            f"127.0.0.1:{udp_port}",
            "--metrics-port",
            str(metrics_port),
        ],
    )
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def up() -> bool | None:
            services.check_running("gateway-mavlink")
            try:
                r = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            except httpx.HTTPError:
                return None
            return True if r.status_code == 200 else None

        await eventually(up, 60, "gateway serving /metrics")
    simulated = SimulatedMavlinkDrone(
        drone, nest, system_id=SYSTEM_ID, gateway=("127.0.0.1", udp_port), time_scale=TIME_SCALE
    )
    stop = asyncio.Event()
    flying = asyncio.create_task(simulated.run(stop))
    try:
        yield Stack(
            services.urls,
            keys.fire,
            keys.operator,
            drone.id,
            scene_near(nest),
            otlp_collector,
            simulated,
        )
    finally:
        stop.set()
        await asyncio.gather(flying, return_exceptions=True)


@dataclass(frozen=True)
class IncidentTrace:
    post: ReceivedSpan
    accepted_publish: ReceivedSpan
    decide: ReceivedSpan
    command_publish: ReceivedSpan
    gateway: ReceivedSpan
    outcome_in_telemetry: ReceivedSpan
    on_scene: ReceivedSpan
    on_scene_publish: ReceivedSpan
    on_scene_in_telemetry: ReceivedSpan

    def spans(self) -> list[ReceivedSpan]:
        return [getattr(self, name) for name in self.__dataclass_fields__]


def _one(spans: list[ReceivedSpan], **wanted: Any) -> ReceivedSpan | None:
    """The first span whose fields (or, for names with dots, attributes) match."""
    for span in spans:
        if all(
            (span.attributes.get(key) if "." in key else getattr(span, key)) == value
            for key, value in ((key.replace("__", "."), value) for key, value in wanted.items())
        ):
            return span
    return None


def incident_trace(spans: list[ReceivedSpan], incident_id: str) -> IncidentTrace | None:
    """The incident's chain of spans, each found by its parent link; None while one of them
    has not been exported yet (or does not exist: then the wait fails with the last found)."""
    post = _one(spans, kind=SERVER, airgrid__incident_id=incident_id)
    if post is None:
        return None
    accepted = _one(spans, name="outbox.publish", parent_id=post.span_id)
    decide = accepted and _one(spans, name="dispatch.decide", parent_id=accepted.span_id)
    if accepted is None or decide is None:
        return None
    found = None
    for command in spans:
        if command.name != "outbox.publish" or command.parent_id != decide.span_id:
            continue
        if command.attributes.get("cloudevents.event_type") != "airgrid.drone.command":
            continue
        gateway = _one(spans, name="gateway.command", parent_id=command.span_id)
        outcome = gateway and _one(spans, name="telemetry.mission_event", parent_id=gateway.span_id)
        if gateway is not None and outcome is not None:
            found = (command, gateway, outcome)
    stage = _one(spans, name="dispatch.stage", parent_id=decide.span_id, airgrid__stage="on_scene")
    published = stage and _one(spans, name="outbox.publish", parent_id=stage.span_id)
    in_telemetry = published and _one(
        spans, name="telemetry.mission_event", parent_id=published.span_id
    )
    if found is None or stage is None or published is None or in_telemetry is None:
        return None
    return IncidentTrace(post, accepted, decide, *found, stage, published, in_telemetry)


async def test_one_incident_is_one_trace_across_the_services(stack: Stack) -> None:
    fire = {"Authorization": f"Bearer {stack.fire_key}"}
    operator = {"Authorization": f"Bearer {stack.operator_key}"}
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def known() -> bool | None:
            r = await client.get(
                f"{stack.urls['telemetry']}/v1/drones/{stack.drone_id}/state", headers=operator
            )
            return True if r.status_code == 200 else None

        await eventually(known, 45, f"live state of {stack.drone_id}")
        body = {
            "type": "fire",
            "priority": 1,
            "location": {"type": "Point", "coordinates": stack.scene},
            "required_capabilities": ["thermal"],
            "drones_needed": 1,
            "on_scene_seconds": 60,  # a 3 s hold at TIME_SCALE: telemetry sees it
            "description": "smoke, traced",
        }
        created = await client.post(
            f"{stack.urls['dispatch']}/v1/incidents", json=body, headers=fire
        )
        assert created.status_code == 201, created.text
        incident_id = created.json()["id"]

        async def on_scene() -> dict[str, Any] | None:
            r = await client.get(
                f"{stack.urls['dispatch']}/v1/incidents/{incident_id}", headers=fire
            )
            data: dict[str, Any] = r.json()
            stages = [entry["stage"] for entry in data["timeline"]]
            return data if "on_scene" in stages else None

        done = await eventually(on_scene, 90, f"incident {incident_id} on scene")
        assert [m["drone_id"] for m in done["missions"]] == [stack.drone_id]

    async def chain() -> IncidentTrace | None:
        return incident_trace(stack.collector.snapshot(), incident_id)

    found = await eventually(chain, 30, f"the spans of {incident_id}, linked", every=0.2)
    assert {span.trace_id for span in found.spans()} == {found.post.trace_id}
    assert found.post.service == "airgrid-dispatch"
    assert found.accepted_publish.attributes["cloudevents.event_id"] == f"{incident_id}:accepted"
    assert found.decide.service == "airgrid-dispatch"
    assert found.gateway.service == "airgrid-gateway-mavlink"
    assert found.gateway.attributes["airgrid.drone_id"] == stack.drone_id
    assert found.on_scene.attributes["airgrid.incident_id"] == incident_id
    mission_id = found.on_scene.attributes["airgrid.mission_id"]
    assert found.on_scene_publish.attributes["cloudevents.event_id"] == f"{mission_id}:on_scene"
    assert found.on_scene_in_telemetry.service == "airgrid-telemetry"
    assert found.outcome_in_telemetry.service == "airgrid-telemetry"
    # Nothing else of the incident started a trace of its own.
    ours = [s for s in stack.collector.snapshot() if s.attributes.get("airgrid.incident_id")]
    assert {s.trace_id for s in ours if s.attributes["airgrid.incident_id"] == incident_id} == {
        found.post.trace_id
    }
