"""Registry change events on the real broker: a separate aiokafka consumer sees every write,
a restart loses nothing, and snapshot + topic rebuild the registry. Import/export round trip."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from airgrid.bus import client_options, ensure_topics, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from airgrid.outbox import OutboxRecord
from airgrid.reference import load_reference
from airgrid.topics import REGISTRY_CHANGES
from airgrid.v1 import registry_pb2
from services.registry.service import Actor, delete
from services.registry.transfer import ImportRejected, export_registry, import_registry
from tests.integration.registry_rig import (
    IN_ZONE,
    geofence_body,
    issue_keys,
    nest_body,
    running_registry,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def isolated(settings: Settings) -> Settings:
    s = settings.model_copy(update={"topic_prefix": f"c{uuid.uuid4().hex[:8]}."})
    await ensure_topics(s)
    return s


class ChangeReader:
    """A consumer of airgrid.registry.changes of its own (no group), from a chosen position."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
        self.partitions: list[TopicPartition] = []

    async def start(self, *, from_beginning: bool) -> None:
        await self.consumer.start()
        name = topic_name(self.settings, REGISTRY_CHANGES)
        self.partitions = await topic_partitions(self.consumer, name)
        assert self.partitions, f"topic {name} has no partitions"
        self.consumer.assign(self.partitions)
        if from_beginning:
            await self.consumer.seek_to_beginning(*self.partitions)
        else:
            await self.consumer.seek_to_end(*self.partitions)
            for tp in self.partitions:  # resolve the position now, before the write
                await self.consumer.position(tp)

    async def until(
        self, wanted: Any, timeout: float = 10.0
    ) -> tuple[registry_pb2.RegistryChange, float]:
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            batches = await self.consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    change = registry_pb2.RegistryChange.FromString(record.value)
                    if wanted(change):
                        return change, time.monotonic() - start
        raise AssertionError(f"no matching registry change within {timeout} s")

    async def drain(self) -> list[registry_pb2.RegistryChange]:
        """Everything up to the end offsets as of now."""
        ends = await self.consumer.end_offsets(self.partitions)
        changes: list[registry_pb2.RegistryChange] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            positions = {tp: await self.consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return changes
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                changes.extend(registry_pb2.RegistryChange.FromString(r.value) for r in records)
        raise AssertionError("could not read the topic to its end within 30 s")

    async def stop(self) -> None:
        await self.consumer.stop()


@pytest.fixture
async def reader(isolated: Settings) -> AsyncIterator[ChangeReader]:
    r = ChangeReader(isolated)
    yield r
    await r.stop()


async def test_a_write_reaches_a_separate_kafka_consumer(
    isolated: Settings, reader: ChangeReader
) -> None:
    async with running_registry(isolated) as (_, client):
        admin = {"Authorization": f"Bearer {(await issue_keys(isolated))['admin']}"}
        await reader.start(from_beginning=False)
        nest_id = unique("tn")
        sent = time.monotonic()
        r = await client.post("/v1/nests", json=nest_body(nest_id), headers=admin)
        assert r.status_code == 201
        change, _ = await reader.until(lambda c: c.entity_id == nest_id)
        created = time.monotonic() - sent
        assert change.nest.charging_slots == 2 and change.version == 1
        assert change.nest.lon == IN_ZONE[0] and change.nest.status == "offline"

        sent = time.monotonic()
        r = await client.patch(
            f"/v1/nests/{nest_id}", json={"wind_mps": 13.0}, headers={**admin, "If-Match": '"1"'}
        )
        assert r.status_code == 200
        change, _ = await reader.until(lambda c: c.entity_id == nest_id and c.version == 2)
        updated = time.monotonic() - sent
        assert change.nest.wind_mps == 13.0

        sent = time.monotonic()
        r = await client.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"2"'})
        assert r.status_code == 204
        change, _ = await reader.until(lambda c: c.entity_id == nest_id and c.deleted)
        deleted = time.monotonic() - sent
        assert change.deleted_kind == "nest" and change.version == 3
        assert change.WhichOneof("entity") is None
        # Measured, not asserted tightly: the issue's target is under 1 s.
        print(
            f"\nregistry write -> separate consumer: create {created * 1000:.0f} ms, "
            f"update {updated * 1000:.0f} ms, delete {deleted * 1000:.0f} ms (target < 1000 ms)"
        )

        # A revoked credential is announced, so other services drop it from their caches.
        keys = await issue_keys(isolated)
        victim = keys["police"].split("_")[1]
        assert (await client.delete(f"/v1/credentials/{victim}", headers=admin)).status_code == 204
        change, _ = await reader.until(lambda c: c.HasField("credential_revoked"))
        assert change.credential_revoked.credential_id == victim


async def _pending_outbox(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxRecord)
                .where(OutboxRecord.service == "registry")
                .where(OutboxRecord.published_at.is_(None))
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_a_restart_loses_nothing(isolated: Settings, reader: ChangeReader) -> None:
    fence_id = unique("tg")
    keys = await issue_keys(isolated)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    # Stop the service right after the 201: whatever the relay had not sent yet is in the outbox.
    async with running_registry(isolated) as (app, client):
        app.state.relay.poll_seconds = 3600  # and it would not poll again before the stop
        r = await client.post("/v1/geofences", json=geofence_body(fence_id), headers=admin)
        assert r.status_code == 201
    async with running_registry(isolated) as (_, client):
        r = await client.get(f"/v1/geofences/{fence_id}", headers=admin)
        assert r.status_code == 200 and r.json()["version"] == 1
        await reader.start(from_beginning=True)
        change, _ = await reader.until(lambda c: c.entity_id == fence_id, timeout=20)
        assert change.geofence.kind == "temporary" and len(change.geofence.ring_lon) == 5
        await _outbox_sent(isolated)
        r = await client.delete(f"/v1/geofences/{fence_id}", headers={**admin, "If-Match": '"1"'})
        assert r.status_code == 204


async def _outbox_sent(settings: Settings) -> None:
    for _ in range(200):
        if await _pending_outbox(settings) == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the registry outbox still holds unsent changes after 20 s")


def _merge(view: dict[str, dict[str, Any]], change: registry_pb2.RegistryChange) -> None:
    """The documented rebuild rule: a change applies when its version is newer."""
    kind = change.deleted_kind if change.deleted else change.WhichOneof("entity")
    if kind not in ("department", "nest", "drone", "geofence"):
        return
    key = f"{kind}:{change.entity_id}"
    known = view.get(key)
    if known is not None and known["version"] >= change.version:
        return
    view[key] = {"version": change.version, "deleted": change.deleted}


async def test_snapshot_plus_topic_rebuild_the_registry(
    isolated: Settings, reader: ChangeReader
) -> None:
    keys = await issue_keys(isolated)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    operator = {"Authorization": f"Bearer {keys['operator']}"}
    async with running_registry(isolated) as (_, client):
        r = await client.get("/v1/snapshot", headers=operator)
        assert r.status_code == 200
        snapshot = r.json()
        assert snapshot["topic"] == topic_name(isolated, REGISTRY_CHANGES)
        assert len(snapshot["departments"]) >= 11 and len(snapshot["drones"]) >= 186
        only = (
            await client.get("/v1/snapshot", params={"include": "nest"}, headers=operator)
        ).json()
        assert only["nests"] and not only["drones"] and not only["departments"]
        view: dict[str, dict[str, Any]] = {}
        for kind, key_field in (
            ("departments", "code"),
            ("nests", "id"),
            ("drones", "id"),
            ("geofences", "id"),
        ):
            for entity in snapshot[kind]:
                view[f"{kind[:-1]}:{entity[key_field]}"] = {
                    "version": entity["version"],
                    "deleted": False,
                }

        # Writes after the snapshot: a create, an update, a delete.
        nest_id, fence_id = unique("tn"), unique("tg")
        assert (
            await client.post("/v1/nests", json=nest_body(nest_id), headers=admin)
        ).status_code == 201
        r = await client.patch(
            f"/v1/nests/{nest_id}",
            json={"status": "maintenance"},
            headers={**admin, "If-Match": '"1"'},
        )
        assert r.status_code == 200
        assert (
            await client.post("/v1/geofences", json=geofence_body(fence_id), headers=admin)
        ).status_code == 201
        r = await client.delete(f"/v1/geofences/{fence_id}", headers={**admin, "If-Match": '"1"'})
        assert r.status_code == 204

        await _outbox_sent(isolated)
        await reader.start(from_beginning=True)
        for change in await reader.drain():
            _merge(view, change)
        rebuilt = {k: v["version"] for k, v in view.items() if not v["deleted"]}

        truth = (await client.get("/v1/snapshot", headers=operator)).json()
        expected = {
            f"{kind[:-1]}:{e['code' if kind == 'departments' else 'id']}": e["version"]
            for kind in ("departments", "nests", "drones", "geofences")
            for e in truth[kind]
        }
        assert rebuilt == expected
        assert rebuilt[f"nest:{nest_id}"] == 2 and f"geofence:{fence_id}" not in rebuilt
        await client.delete(f"/v1/nests/{nest_id}", headers={**admin, "If-Match": '"2"'})


async def test_import_export_round_trip_and_all_or_nothing(isolated: Settings) -> None:
    async with running_registry(isolated) as _:
        pass  # migrated, seeded
    engine = create_engine(isolated)
    sessions = session_factory(engine)
    actor = Actor("test-import", "admin")
    zone = load_reference(isolated.reference_data).zone
    try:
        async with sessions() as session:
            document = await export_registry(session)
        assert document["format"] == "airgrid-registry/1"
        assert len(document["drones"]) >= 186 and "credentials" not in document
        again = await import_registry(sessions, document, actor=actor, zone=zone)
        assert not again.created and not again.updated, again.summary()

        nest_id = unique("tn")
        document["nests"].append(nest_body(nest_id))
        document["departments"][0]["contact"] = "changed@example.gov"
        result = await import_registry(sessions, document, actor=actor, zone=zone)
        assert result.created == {"nest": 1} and result.updated == {"department": 1}

        bad = {**document, "geofences": [geofence_body(unique("tg"), [[1.0, 1.0], [2.0, 2.0]])]}
        bad["nests"] = [*document["nests"], nest_body(unique("tn"))]
        with pytest.raises(ImportRejected) as rejected:
            await import_registry(sessions, bad, actor=actor, zone=zone)
        assert "geofences[0]" in str(rejected.value)
        async with sessions() as session:
            after = await export_registry(session)
        assert len(after["nests"]) == len(document["nests"])  # nothing of the bad import
        async with sessions() as session, session.begin():
            await delete(session, kind="nest", key=nest_id, if_match="*", actor=actor)
    finally:
        await engine.dispose()


async def test_a_key_revoked_on_one_replica_stops_on_another(isolated: Settings) -> None:
    keys = await issue_keys(isolated)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    fire = {"Authorization": f"Bearer {keys['fire']}"}
    async with (
        running_registry(isolated) as (_, first),
        running_registry(isolated) as (_, second),
    ):
        assert (await second.get("/v1/nests", headers=fire)).status_code == 200  # cached there
        fire_id = keys["fire"].split("_")[1]
        assert (await first.delete(f"/v1/credentials/{fire_id}", headers=admin)).status_code == 204
        assert (await first.get("/v1/nests", headers=fire)).status_code == 401
        for _ in range(100):
            if (await second.get("/v1/nests", headers=fire)).status_code == 401:
                break
            await asyncio.sleep(0.1)
        r = await second.get("/v1/nests", headers=fire)
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_seeding_again_never_brings_back_a_deleted_entity(isolated: Settings) -> None:
    from dataclasses import replace

    from airgrid.reference import GeofenceSpec, load_reference
    from services.registry.seed import seed_reference

    keys = await issue_keys(isolated)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    fence_id = unique("tg")
    async with running_registry(isolated) as (_, client):
        assert (
            await client.post("/v1/geofences", json=geofence_body(fence_id), headers=admin)
        ).status_code == 201
        r = await client.delete(f"/v1/geofences/{fence_id}", headers={**admin, "If-Match": '"1"'})
        assert r.status_code == 204
    ring = tuple((p[0], p[1]) for p in geofence_body(fence_id)["geometry"]["coordinates"][0])
    zone = replace(
        load_reference(isolated.reference_data),
        departments=(),
        nests=(),
        drones=(),
        geofences=(GeofenceSpec(fence_id, "again", "no-fly", ring, None, None, None),),
    )
    engine = create_engine(isolated)
    try:
        result = await seed_reference(session_factory(engine), zone)
    finally:
        await engine.dispose()
    assert result.total == 0
