"""Start-up checks that turn a missing database or broker into one actionable sentence."""

from __future__ import annotations

from airgrid.bus import BrokerUnavailable, wait_for_broker
from airgrid.config import Settings
from airgrid.db import DatabaseUnavailable, check_database, create_engine
from airgrid.migrate import SchemaOutOfDate, require_schema_at_head


async def preflight(settings: Settings, *, broker_timeout: float = 10.0) -> str | None:
    """None when the database (at the schema head) and the broker answer; else what to do."""
    engine = create_engine(settings)
    try:
        await check_database(engine)
        await require_schema_at_head(engine)
    except (DatabaseUnavailable, SchemaOutOfDate) as error:
        return str(error)
    finally:
        await engine.dispose()
    try:
        await wait_for_broker(settings, timeout=broker_timeout)
    except BrokerUnavailable as error:
        return str(error)
    return None
