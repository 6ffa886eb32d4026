"""The Alembic migrations and the ORM models describe the same schema: after `upgrade head`,
Alembic's autogenerate finds nothing to add, drop or alter for any table a model maps."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from airgrid.config import Settings
from airgrid.db import create_engine
from entrypoints.schema import metadata

pytestmark = pytest.mark.integration


def _mapped_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Tables that no model maps (such as Alembic's own version table) are out of scope;
    # everything a model maps is compared.
    return not (type_ == "table" and reflected and compare_to is None)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"include_object": _mapped_only, "compare_type": True}
    )
    return list(compare_metadata(context, metadata))


async def test_models_match_the_migrations(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"
