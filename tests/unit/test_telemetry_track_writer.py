"""Unit: the track writer writes one batch at a time and merges the batches waiting behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from airgrid.v1 import telemetry_pb2
from services.telemetry.track_writer import TrackWriter


def records(drone_id: str, *seqs: int) -> list[telemetry_pb2.Telemetry]:
    return [telemetry_pb2.Telemetry(drone_id=drone_id, seq=seq) for seq in seqs]


class GatedStore:
    """Records each write's (drone, seq) pairs; a write finishes when the test opens the gate."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, int]]] = []
        self.gate = asyncio.Event()
        self.fail_next = False

    async def write(self, engine: Any, batch: Sequence[telemetry_pb2.Telemetry]) -> None:
        self.writes.append([(r.drone_id, r.seq) for r in batch])
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")


async def test_batches_queued_behind_a_write_become_one_write_in_order() -> None:
    store = GatedStore()
    writer = TrackWriter(engine=None, write=store.write)  # type: ignore[arg-type]
    first = writer.write(records("a", 1, 2))
    await asyncio.sleep(0)  # the first write is under way
    second, third = writer.write(records("a", 3)), writer.write(records("b", 1))
    empty = writer.write([])
    assert empty.done()
    store.gate.set()
    await asyncio.gather(first, second, third)
    assert store.writes == [[("a", 1), ("a", 2)], [("a", 3), ("b", 1)]]


async def test_a_failed_write_fails_every_batch_it_carried_and_the_next_one_runs() -> None:
    store = GatedStore()
    writer = TrackWriter(engine=None, write=store.write)  # type: ignore[arg-type]
    store.fail_next = True
    first = writer.write(records("a", 1))
    store.gate.set()
    with pytest.raises(ConnectionError):
        await first
    await writer.write(records("a", 1))
    assert store.writes == [[("a", 1)], [("a", 1)]]
