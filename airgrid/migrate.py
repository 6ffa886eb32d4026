"""Schema migrations: Alembic, driven from code so `airgrid db upgrade` needs no ini file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.config import Settings
from airgrid.db import prepare_sqlite_directory

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The database schema is not at the code's head revision."""


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = settings.sqlalchemy_url
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Run in a thread of its own: Alembic's env runs an event loop of its own."""
    prepare_sqlite_directory(settings)
    command.upgrade(alembic_config(settings), revision)


async def upgrade_async(settings: Settings) -> None:
    await asyncio.to_thread(upgrade, settings)


async def require_schema_at_head(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception:
        current = None
    if current != head_revision():
        raise SchemaOutOfDate(
            f"the database schema is at {current or 'nothing'}, the code needs "
            f"{head_revision()}: run `airgrid db upgrade`"
        )
