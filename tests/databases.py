"""A database of a test's own, on the suite's PostgreSQL server.

For tests whose services restore every open incident they find at start: in the suite's
shared database another test's leftovers would be theirs to restore, decide and breach.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from airgrid.config import Settings
from airgrid.migrate import upgrade


@asynccontextmanager
async def database_of_its_own(settings: Settings, label: str) -> AsyncIterator[Settings]:
    """`settings` pointed at a new, migrated database `airgrid_<label>_<random>` on the same
    server; the database is dropped afterwards, its connections closed first."""
    url = make_url(settings.sqlalchemy_url)
    name = f"airgrid_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        own = settings.model_copy(
            update={"database_url": url.set(database=name).render_as_string(hide_password=False)}
        )
        await asyncio.to_thread(upgrade, own)
        yield own
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
