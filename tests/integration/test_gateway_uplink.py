"""The gateways' telemetry uplink through an outage: records wait in a bounded buffer (the
oldest dropped first) while the telemetry service cannot be reached, and nothing is lost
below the bound."""

from __future__ import annotations

import pytest

from airgrid.config import Settings
from airgrid.v1 import telemetry_pb2
from gateways.airgrid_link import AirgridLink, GatewayRefused, LinkConfig
from tests.conftest import free_port


def _record(seq: int) -> telemetry_pb2.Telemetry:
    return telemetry_pb2.Telemetry(drone_id="drone-001", seq=seq, lon=114.4, lat=30.5)


async def test_records_wait_through_an_outage_within_the_bound(settings: Settings) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens here: a network outage
    link = AirgridLink(
        settings,
        LinkConfig(
            gateway="test",
            key="ag_0000000000000000_not-a-real-key-000000",
            registry_url=nobody,
            telemetry_url=nobody,
            consumer_group="unused",
            buffer_records=5,
        ),
    )
    try:
        for seq in range(1, 4):
            link.submit(_record(seq))
        assert await link.send_once() is False
        assert [r.seq for r in link.buffer] == [1, 2, 3]  # kept, in order, for the retry
        for seq in range(4, 9):
            link.submit(_record(seq))
        assert [r.seq for r in link.buffer] == [4, 5, 6, 7, 8]  # bounded: oldest dropped
        assert await link.send_once() is False
        assert [r.seq for r in link.buffer] == [4, 5, 6, 7, 8]
    finally:
        await link.stop()


async def test_an_unreachable_registry_is_reported_at_start_and_tolerated_later(
    settings: Settings,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    link = AirgridLink(settings, LinkConfig("test", "bad", nobody, nobody, "unused"))
    try:
        with pytest.raises(GatewayRefused, match="is it running"):
            await link.refresh_registry(strict=True)
        await link.refresh_registry()  # while running: logged, the last known list is kept
        assert link.drones == {}
    finally:
        await link.stop()
