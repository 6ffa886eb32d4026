"""Integration: POST /v1/detections through the real broker: each bad kind on the detection
DLQ with its reason, the good ones on airgrid.detections, a gateway's scope, and the requests
refused whole."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airgrid.auth import Role, issue_credential
from airgrid.bus import Producer, ensure_topics, now_ms
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.topics import DETECTIONS, DETECTIONS_DLQ, PROTOBUF
from airgrid.v1 import inspection_pb2
from services.telemetry.app import build_app
from tests.eventually import eventually
from tests.integration.inspection_rig import (
    CENTRE,
    DEADLINE_S,
    Read,
    detection,
    read_topic,
    register_drone,
    register_scenarios,
)

pytestmark = pytest.mark.integration

NEST = "nest-a"


@pytest.fixture
async def own_topics(fresh_prefix: Settings) -> AsyncIterator[tuple[Settings, Producer]]:
    await ensure_topics(fresh_prefix)
    producer = Producer(fresh_prefix, source="airgrid/test")
    await producer.start()
    yield fresh_prefix, producer
    await producer.stop()


async def keys(settings: Settings) -> dict[str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, gateway = issue_credential(session, role=Role.GATEWAY, nest_id=NEST)
            _, other = issue_credential(session, role=Role.GATEWAY, nest_id="nest-b")
            _, department = issue_credential(session, role=Role.DEPARTMENT, department="fire")
    finally:
        await engine.dispose()
    return {"gateway": gateway, "other": other, "department": department}


def fix(drone_id: str, mode: str, seq: int = 1) -> dict[str, Any]:
    return {
        "drone_id": drone_id,
        "seq": seq,
        "event_time_ms": now_ms() - 1_000,
        "lon": CENTRE[0],
        "lat": CENTRE[1],
        "alt_m": 80.0 if mode != "docked" else 0.0,
        "battery_pct": 80.0,
        "flight_mode": mode,
        "nest_id": NEST,
    }


async def test_each_bad_detection_reaches_the_dlq_with_its_reason(
    own_topics: tuple[Settings, Producer],
) -> None:
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    flying, docked, theirs = f"dr-f-{run}", f"dr-d-{run}", f"dr-t-{run}"
    await register_drone(producer, flying, NEST)
    await register_drone(producer, docked, NEST)
    await register_drone(producer, theirs, "nest-b")
    await register_scenarios(producer)
    key = await keys(settings)
    gateway = {"Authorization": f"Bearer {key['gateway']}"}

    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        r = await client.post(
            "/v1/telemetry",
            json={"records": [fix(flying, "cruising"), fix(docked, "docked")]},
            headers=gateway,
        )
        assert r.status_code == 202, r.text

        async def states_known() -> bool | None:
            known = all(d in app.state.states.items for d in (flying, docked))
            return True if known and "scenario:smoke" in app.state.registry.items else None

        await eventually(states_known, DEADLINE_S, "the drones' states and the catalogue")

        now = now_ms()
        expected = {
            f"ok-{run}": "",
            f"scn-{run}": "unknown_scenario",
            f"conf-{run}": "bad_confidence",
            f"zone-{run}": "outside_zone",
            f"docked-{run}": "drone_not_in_flight",
            f"sha-{run}": "bad_media_sha256",
            f"uri-{run}": "malformed",
            f"drone-{run}": "unknown_drone",
            f"future-{run}": "future",
            f"old-{run}": "too_old",
        }
        batch = [
            detection(f"ok-{run}", flying),
            detection(f"scn-{run}", flying, scenario="no_such_scenario"),
            detection(f"conf-{run}", flying, confidence=1.5),
            detection(f"zone-{run}", flying, lon=CENTRE[0] + 3.0),
            detection(f"docked-{run}", docked),
            detection(f"sha-{run}", flying, sha256="AB" * 32),
            detection(f"uri-{run}", flying, uri=""),
            detection(f"drone-{run}", f"dr-unknown-{run}"),
            detection(f"future-{run}", flying, observed_time_ms=now + 600_000),
            detection(f"old-{run}", flying, observed_time_ms=now - 2 * 3_600_000),
        ]
        r = await client.post("/v1/detections", json={"detections": batch}, headers=gateway)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == 1
        assert {x["id"]: x["reason"] for x in body["rejected"]} == {
            i: reason for i, reason in expected.items() if reason
        }

        # NaN cannot be written in JSON; the protobuf body carries it.
        nan = inspection_pb2.Detection(
            id=f"nan-{run}",
            drone_id=flying,
            scenario="smoke",
            confidence=math.nan,
            lon=CENTRE[0],
            lat=CENTRE[1],
            observed_time_ms=now_ms(),
            media=inspection_pb2.MediaRef(uri="s3://m/2.jpg", sha256="cd" * 32),
        )
        r = await client.post(
            "/v1/detections",
            content=inspection_pb2.DetectionBatch(detections=[nan]).SerializeToString(),
            headers={**gateway, "Content-Type": PROTOBUF},
        )
        assert r.status_code == 202, r.text
        assert [x["reason"] for x in r.json()["rejected"]] == ["bad_confidence"]
        expected[f"nan-{run}"] = "bad_confidence"

    def by_id(rows: list[Read]) -> dict[str, str]:
        return {inspection_pb2.Detection.FromString(row.value).id: row.reason for row in rows}

    dlq = await read_topic(settings, DETECTIONS_DLQ, until=lambda rows: len(rows) >= 10)
    assert by_id(dlq) == {i: reason for i, reason in expected.items() if reason}
    assert {row.key for row in dlq} == {flying, docked, f"dr-unknown-{run}"}
    good = await read_topic(settings, DETECTIONS, until=lambda rows: len(rows) >= 1)
    assert by_id(good) == {f"ok-{run}": ""}
    assert good[0].key == flying


async def test_a_gateway_posts_only_for_its_nests_drones_and_bad_requests_are_refused(
    own_topics: tuple[Settings, Producer],
) -> None:
    settings, producer = own_topics
    run = uuid.uuid4().hex[:6]
    ours, theirs = f"dr-o-{run}", f"dr-t-{run}"
    await register_drone(producer, ours, NEST)
    await register_drone(producer, theirs, "nest-b")
    await register_scenarios(producer)
    key = await keys(settings)
    gateway = {"Authorization": f"Bearer {key['gateway']}"}
    other = {"Authorization": f"Bearer {key['other']}"}

    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):

        async def registered() -> bool | None:
            return True if {ours, theirs} <= app.state.registry.items.keys() else None

        await eventually(registered, DEADLINE_S, "the registry view")

        async def post(headers: dict[str, str], *items: dict[str, Any]) -> httpx.Response:
            return await client.post(
                "/v1/detections", json={"detections": list(items)}, headers=headers
            )

        # Another nest's drone, even beside one of ours, refuses the whole batch.
        r = await post(gateway, detection(f"a-{run}", ours), detection(f"b-{run}", theirs))
        assert r.status_code == 403, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert theirs in r.json()["detail"] and ours not in r.json()["detail"]
        department = {"Authorization": f"Bearer {key['department']}"}
        assert (await post(department, detection(f"c-{run}", ours))).status_code == 403

        # Refused whole, as problems: a body of the wrong shape, bad protobuf, another media
        # type, a batch too large.
        r = await client.post("/v1/detections", json={"detections": [{"id": 1}]}, headers=gateway)
        assert r.status_code == 422, r.text
        # A time past int64 (protobuf's range) is the JSON's fault, not the server's.
        r = await post(gateway, {**detection(f"t-{run}", ours), "observed_time_ms": 2**63})
        assert r.status_code == 422, r.text
        assert "observed_time_ms" in r.text
        r = await client.post(
            "/v1/detections", content=b"\xff\xff", headers={**gateway, "Content-Type": PROTOBUF}
        )
        assert r.status_code == 400, r.text
        r = await client.post(
            "/v1/detections", content=b"x", headers={**gateway, "Content-Type": "text/plain"}
        )
        assert r.status_code == 415, r.text
        many = [detection(f"m-{i}-{run}", ours) for i in range(501)]
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (await post(gateway, *many)).status_code == 413

        # The other nest's gateway reports its own drone (it is not flying: so the DLQ).
        r = await post(other, detection(f"d-{run}", theirs))
        assert r.status_code == 202, r.text
        assert [x["reason"] for x in r.json()["rejected"]] == ["drone_not_in_flight"]

    # Nothing of the refused requests reached a topic: the DLQ holds only the last one.
    dlq = await read_topic(settings, DETECTIONS_DLQ, until=lambda rows: len(rows) >= 1)
    ids = [inspection_pb2.Detection.FromString(row.value).id for row in dlq]
    assert ids == [f"d-{run}"]
