"""Two telemetry replicas' freshness keepers on the real PostgreSQL: each marks only its own
drones' fixes, and after their merges through the stored row both hold every sighting (the
later time per cell), so either answers for the whole zone."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.freshness import NEVER
from airgrid.reference import load_reference
from airgrid.v1 import telemetry_pb2
from services.telemetry.freshness_keeper import FreshnessKeeper

pytestmark = pytest.mark.integration

REFERENCE = load_reference()


def fix(lon: float, lat: float, at_ms: int) -> telemetry_pb2.Telemetry:
    return telemetry_pb2.Telemetry(
        drone_id="dr-merge",
        lon=lon,
        lat=lat,
        alt_m=120.0,
        event_time_ms=at_ms,
        flight_mode=telemetry_pb2.FLIGHT_MODE_CRUISING,
    )


async def test_replicas_merge_their_sightings_through_the_stored_row(settings: Settings) -> None:
    own = settings.model_copy(update={"topic_prefix": f"m{uuid.uuid4().hex[:8]}."})
    first = FreshnessKeeper(REFERENCE, own)
    second = FreshnessKeeper(REFERENCE, own)
    a, b, c = (
        first.grid.cell_centre(i) for i in (100, len(first.grid) // 2, len(first.grid) - 100)
    )
    first.observe([fix(*a, 1_000), fix(*b, 5_000)])
    # The same cell later on the other replica, and a cell only it saw.
    second.observe([fix(*b, 9_000), fix(*c, 2_000)])
    union = np.maximum(first.grid.last_seen_ms, second.grid.last_seen_ms)
    assert (first.grid.last_seen_ms != union).any() and (second.grid.last_seen_ms != union).any()

    engine = create_engine(own)
    try:
        await first.sync(engine)
        await second.sync(engine)  # sees the first's, stores the union
        await first.sync(engine)  # sees the second's
        restarted = FreshnessKeeper(REFERENCE, own)
        await restarted.sync(engine)
    finally:
        await engine.dispose()
    for keeper in (first, second, restarted):
        assert (keeper.grid.last_seen_ms == union).all()
    assert int((union != NEVER).sum()) >= 3
    assert int(union.max()) == 9_000
