"""Integration: department feeds over SSE on the real broker and PostgreSQL, served by the
telemetry app in this process: resume after Last-Event-ID (on another replica), isolation of
all 11 feeds, filters, keep-alives, a revoked credential's stream closing, the stream cap."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import update

from airgrid.auth import Credential
from airgrid.bus import Producer
from airgrid.config import Settings
from airgrid.db import create_engine, utcnow
from airgrid.topics import DEPARTMENT_CODES, REGISTRY_CHANGES, feed_topic
from airgrid.v1 import registry_pb2
from tests.eventually import eventually, until
from tests.integration.feed_rig import DEADLINE_S, FeedReader, issue_keys, telemetry_server

pytestmark = pytest.mark.integration

# The bound within which the stream of a revoked or expired credential must end.
REVOKED_STREAM_BOUND_S = 5.0


@pytest.fixture
async def feed_settings(fresh_prefix: Settings) -> Settings:
    return fresh_prefix.model_copy(update={"feed_keepalive_seconds": 1.0})


@pytest.fixture
async def producer(feed_settings: Settings) -> AsyncIterator[Producer]:
    producer = Producer(feed_settings, source="airgrid/test")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish(producer: Producer, department: str, item: dict[str, Any], key: str) -> Any:
    """One feed item, acknowledged; returns its record metadata (partition, offset)."""
    future = await producer.send(
        feed_topic(department), orjson.dumps(item), key=key, ce_type="test.feed"
    )
    return await future


async def test_a_client_that_drops_mid_stream_resumes_on_another_replica_exactly_once(
    feed_settings: Settings, producer: Producer
) -> None:
    """Items keep coming while the client is away; it comes back with its Last-Event-ID to
    the other replica and, over both connections, has every item published exactly once."""
    total, before_drop, while_away = 1200, 300, 600
    keys = await issue_keys(feed_settings, ["fire"])
    _, key = keys["fire"]
    published: dict[int, tuple[int, int]] = {}
    dropped = asyncio.Event()

    async def publish_items() -> None:
        for n in range(total):
            if n == before_drop:
                await dropped.wait()
            kind = "drone.position" if n % 2 else "alert.low_battery"
            meta = await publish(producer, "fire", {"type": kind, "n": n}, key=f"s-{n % 11}")
            published[n] = (meta.partition, meta.offset)

    async with (
        telemetry_server(feed_settings) as replica_a,
        telemetry_server(feed_settings) as replica_b,
        httpx.AsyncClient(base_url=replica_a) as a,
        httpx.AsyncClient(base_url=replica_b) as b,
    ):
        first = await FeedReader(a, "fire", key).start().connected()
        publisher = asyncio.create_task(publish_items())
        second: FeedReader | None = None
        try:
            await until(lambda: len(first.events) >= 100, DEADLINE_S, "the first events")
            await first.stop()  # the client drops mid-stream
            dropped.set()
            await until(lambda: len(published) >= before_drop + while_away, DEADLINE_S, "more")
            assert len(published) < total, "the publisher finished before the client was back"
            second = FeedReader(b, "fire", key, last_event_id=first.events[-1].id).start()
            await second.connected()

            def received() -> list[int]:
                assert second is not None
                return [e.data["n"] for e in first.events + second.events if "n" in e.data]

            await until(lambda: len(set(received())) >= total, DEADLINE_S, "every item")
            await publisher
            # One marker per partition: a late duplicate of a record would come before it.
            markers: set[int] = set()
            for attempt in range(200):
                meta = await publish(producer, "fire", {"type": "marker"}, key=f"m-{attempt}")
                markers.add(meta.partition)
                if len(markers) == feed_topic("fire").partitions:
                    break
            await until(
                lambda: sum(e.event == "marker" for e in second.events) >= len(markers),
                DEADLINE_S,
                "the markers",
            )
            counts = Counter(received())
            assert sorted(counts) == list(range(total))
            assert [n for n, copies in counts.items() if copies > 1] == []
            assert not second.ended.is_set()
            for event in first.events + second.events:
                if "n" not in event.data:
                    continue
                partition, offset = published[event.data["n"]]
                assert f"{partition}-{offset}" in event.id.split("."), event
                assert event.event == event.data["type"]
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            await first.stop()
            if second is not None:
                await second.stop()


async def test_every_department_feed_carries_only_its_own_items(
    feed_settings: Settings, producer: Producer
) -> None:
    keys = await issue_keys(feed_settings, list(DEPARTMENT_CODES))
    per_feed = 5
    async with (
        telemetry_server(feed_settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        readers = {
            code: await FeedReader(client, code, keys[code][1]).start().connected()
            for code in DEPARTMENT_CODES
        }
        try:
            for n in range(per_feed):
                for code in DEPARTMENT_CODES:
                    await publish(producer, code, {"type": "alert.test", "of": code, "n": n}, code)
            for code in DEPARTMENT_CODES:  # after every feed's items
                await publish(producer, code, {"type": "marker", "of": code}, code)
            await until(
                lambda: all(any(e.event == "marker" for e in r.events) for r in readers.values()),
                DEADLINE_S,
                "every feed's marker",
            )
            for code, reader in readers.items():
                assert {e.data["of"] for e in reader.events} == {code}
                assert sorted(e.data.get("n", -1) for e in reader.events) == [-1, 0, 1, 2, 3, 4]
        finally:
            for reader in readers.values():
                await reader.stop()


async def test_filters_keep_alives_and_a_malformed_last_event_id(
    feed_settings: Settings, producer: Producer
) -> None:
    keys = await issue_keys(feed_settings, ["traffic"])
    _, key = keys["traffic"]
    async with (
        telemetry_server(feed_settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        filtered = FeedReader(
            client, "traffic", key, params={"types": "drone.position", "bbox": "114,30,115,31"}
        )
        await filtered.start().connected()
        try:
            items = [
                {"type": "drone.position", "lon": 114.5, "lat": 30.5, "n": 0},
                {"type": "drone.position", "lon": 120.0, "lat": 30.5, "n": 1},
                {"type": "alert.low_battery", "lon": 114.5, "lat": 30.5, "n": 2},
                {"type": "drone.position", "lon": 114.6, "lat": 30.6, "n": 3},
            ]
            for item in items:
                await publish(producer, "traffic", item, "d1")
            await until(lambda: len(filtered.events) >= 2, DEADLINE_S, "filtered items")
            await until(lambda: "keep-alive" in filtered.comments, DEADLINE_S, "a keep-alive")
            assert [e.data["n"] for e in filtered.events] == [0, 3]

            for bad in ("abc", "7-1", "0-1.0-2", "0--1", "0-" + "9" * 30, "0-1." * 300):
                r = await client.get(
                    "/v1/feeds/traffic/stream",
                    headers={"Authorization": f"Bearer {key}", "Last-Event-ID": bad},
                )
                assert r.status_code == 400, (bad, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
            r = await client.get(
                "/v1/feeds/traffic/stream",
                params={"last_event_id": "x"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 400

            spec = (await client.get("/openapi.json")).json()
            operation = spec["paths"]["/v1/feeds/{department}/stream"]["get"]
            assert list(operation["responses"]["200"]["content"]) == ["text/event-stream"]
            where = {(p["name"], p["in"]) for p in operation["parameters"]}
            assert {("Last-Event-ID", "header"), ("last_event_id", "query")} <= where
            assert "id: " in operation["description"] and "event: " in operation["description"]
            assert "429" in operation["responses"]
        finally:
            await filtered.stop()


async def test_the_stream_of_a_revoked_credential_ends_within_the_bound(
    feed_settings: Settings,
) -> None:
    keys = await issue_keys(feed_settings, ["police", "water"])
    (police_id, police), (water_id, water) = keys["police"], keys["water"]
    async with (
        telemetry_server(feed_settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        revoked = await FeedReader(client, "police", police).start().connected()
        # Announced only, as the registry's outbox does for a revocation on another replica.
        announced = await FeedReader(client, "water", water).start().connected()
        try:
            engine = create_engine(feed_settings)
            try:
                async with engine.begin() as connection:
                    await connection.execute(
                        update(Credential)
                        .where(Credential.id == police_id)
                        .values(revoked_at=utcnow())
                    )
            finally:
                await engine.dispose()
            await asyncio.wait_for(revoked.ended.wait(), REVOKED_STREAM_BOUND_S)
            assert any(c.startswith("closed:") for c in revoked.comments)

            change = registry_pb2.RegistryChange(
                entity_id=water_id,
                credential_revoked=registry_pb2.CredentialRevoked(credential_id=water_id),
            )
            announcement = Producer(feed_settings, source="airgrid/test")
            await announcement.start()
            try:
                await announcement.send_and_wait(
                    REGISTRY_CHANGES, change.SerializeToString(), key=water_id, ce_type="t"
                )
            finally:
                await announcement.stop()
            await asyncio.wait_for(announced.ended.wait(), REVOKED_STREAM_BOUND_S)

            again = await client.get(
                "/v1/feeds/police/stream", headers={"Authorization": f"Bearer {police}"}
            )
            assert again.status_code == 401
        finally:
            await revoked.stop()
            await announced.stop()


async def test_one_stream_past_the_cap_is_refused_with_retry_after(
    feed_settings: Settings,
) -> None:
    keys = await issue_keys(feed_settings, ["parks"])
    _, key = keys["parks"]
    cap = feed_settings.feed_max_streams_per_key
    async with (
        telemetry_server(feed_settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        streams = [await FeedReader(client, "parks", key).start().connected() for _ in range(cap)]
        try:
            assert all(s.status == 200 for s in streams)
            refused = await client.get(
                "/v1/feeds/parks/stream", headers={"Authorization": f"Bearer {key}"}
            )
            assert refused.status_code == 429
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert int(refused.headers["retry-after"]) > 0

            await streams.pop().stop()  # a slot comes free once a stream is closed

            async def admitted() -> FeedReader | None:
                reader = await FeedReader(client, "parks", key).start().connected()
                return reader if reader.status == 200 else None

            streams.append(await eventually(admitted, DEADLINE_S, "a free slot"))
        finally:
            for stream in streams:
                await stream.stop()
