"""The precision gauge: per scenario, the share of cases the departments dismissed, set from
the database after each transition and every period, so every replica reports it."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from services.telemetry.case_store import precision_counts
from services.telemetry.metrics import record_precision

log = logging.getLogger("airgrid.telemetry")

PERIOD_SECONDS = 30.0


async def refresh_precision(engine: AsyncEngine) -> None:
    record_precision(await precision_counts(engine))


async def keep_precision(engine: AsyncEngine, period_s: float = PERIOD_SECONDS) -> None:
    """Refresh the gauge every period for the life of the service."""
    while True:
        try:
            await refresh_precision(engine)
        except Exception:
            log.exception("case precision not refreshed; retrying later")
        await asyncio.sleep(period_s)
