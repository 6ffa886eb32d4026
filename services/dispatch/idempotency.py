"""Idempotency-Key (IETF httpapi draft): replay after completion, 409 in flight, 422 on misuse."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import orjson
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from airgrid.db import utcnow
from airgrid.problems import Problem
from services.dispatch.models import IdempotencyKeyRow

# A key left in flight this long belongs to a request whose process died: it may be retried.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: bytes


def request_fingerprint(body: bytes) -> str:
    """Hash of the JSON body with its keys sorted, so a retry that serialises the same
    request differently (key order, spacing) is still the same request."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def claim(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, fingerprint: str
) -> Replay | None:
    """Claim the key for this request, or return the stored first result to replay."""
    if not 1 <= len(key) <= 255:
        raise Problem(
            400, "Invalid Idempotency-Key", "Idempotency-Key must be 1 to 255 characters."
        )
    for _ in range(2):
        try:
            async with sessions() as session, session.begin():
                session.add(IdempotencyKeyRow(caller=caller, key=key, request_hash=fingerprint))
            return None
        except IntegrityError:
            pass
        async with sessions() as session, session.begin():
            row = await session.scalar(
                select(IdempotencyKeyRow).where(
                    IdempotencyKeyRow.caller == caller, IdempotencyKeyRow.key == key
                )
            )
            if row is None:
                continue  # released in between; claim again
            if row.request_hash != fingerprint:
                raise Problem(
                    422,
                    "Idempotency-Key reused",
                    "This Idempotency-Key was used with a different request body; "
                    "use a new key for a new request.",
                    kind="idempotency-key-reused",
                )
            if row.status_code is not None and row.response_body is not None:
                return Replay(row.status_code, row.response_body)
            if utcnow() - row.created_at > ABANDONED_AFTER:
                await session.delete(row)
                continue
            raise Problem(
                409,
                "Request in progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                kind="idempotency-key-in-flight",
                headers={"Retry-After": "1"},
            )
    raise Problem(409, "Request in progress", "Retry shortly.", headers={"Retry-After": "1"})


async def complete(
    session: AsyncSession, *, caller: str, key: str, status_code: int, body: bytes
) -> None:
    """Store the result inside the transaction that did the work."""
    row = await session.get(IdempotencyKeyRow, (caller, key))
    if row is not None:
        row.status_code = status_code
        row.response_body = body


async def release(sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str) -> None:
    """The request failed before doing anything: the key may be used again."""
    async with sessions() as session, session.begin():
        await session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.caller == caller,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.status_code.is_(None),
            )
        )
