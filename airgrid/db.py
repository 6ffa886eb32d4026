"""Database adapter: async engine and sessions for PostgreSQL (asyncpg) and embedded SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from airgrid.config import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every airgrid table; services own theirs, one Alembic history migrates them all."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message says what to do."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def prepare_sqlite_directory(settings: Settings) -> None:
    """SQLite cannot create the folder of its file; make it."""
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite":
        prepare_sqlite_directory(settings)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args=postgres_tls(settings),
    )


def postgres_tls(settings: Settings) -> dict[str, Any]:
    """asyncpg connect arguments for AIRGRID_DATABASE_SSL_MODE (disable, require, verify-ca,
    verify-full) with an optional CA bundle and client certificate."""
    mode = settings.database_ssl_mode.lower()
    if mode == "disable":
        return {}
    if mode not in ("require", "verify-ca", "verify-full"):
        raise DatabaseUnavailable(
            f"AIRGRID_DATABASE_SSL_MODE={mode!r} is not one of disable, require, verify-ca, "
            "verify-full"
        )
    import ssl

    context = ssl.create_default_context(cafile=settings.database_ssl_rootcert)
    if mode == "require":  # encrypted, server not verified (libpq's meaning of require)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        context.check_hostname = False
    if settings.database_ssl_cert:
        context.load_cert_chain(settings.database_ssl_cert, settings.database_ssl_key)
    return {"ssl": context}


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def check_database(engine: AsyncEngine, timeout: float = 5.0) -> None:
    """Raise DatabaseUnavailable unless a trivial query answers within timeout."""
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:
        raise DatabaseUnavailable(
            f"the database at {engine.url.render_as_string(hide_password=True)} is not "
            f"reachable ({type(error).__name__}: {error}); start it or fix AIRGRID_DATABASE_URL"
        ) from error


@contextlib.asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work: commits on success, rolls back on error."""
    async with sessions() as session, session.begin():
        yield session


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
