"""What the registry routers share: who may call (role dependencies), the transaction of a
write, paging, ETags and the OpenAPI pieces of the write operations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import (
    Authenticator,
    CurrentPrincipal,
    Principal,
    Role,
    current_principal,
    require_role,
)
from airgrid.problems import Problem
from airgrid.service_app import Infrastructure
from services.registry import service
from services.registry.changes import Row


async def refuse_nul(request: Request, principal: CurrentPrincipal) -> None:
    """No database text holds NUL: a path or query carrying one is a 422, never a 500."""
    texts = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(text) for text in texts):
        raise Problem(
            422,
            "Invalid request",
            "The path or query contains a NUL character; remove it.",
            kind="invalid-request",
        )


IfMatch = Annotated[
    str | None,
    Header(description="The ETag from GET; required, a stale one answers 412.", max_length=200),
]


def infra_of(request: Request) -> Infrastructure:
    return request.app.state.infra  # type: ignore[no-any-return]


InfraDep = Annotated[Infrastructure, Depends(infra_of)]


async def _admin(principal: CurrentPrincipal) -> Principal:
    require_role(principal, Role.ADMIN)
    return principal


async def _admin_or_operator(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    require_role(principal, Role.ADMIN, Role.OPERATOR)
    return principal


# Role checks are dependencies, so a wrong role gets 403 before its body is even validated.
AdminPrincipal = Annotated[Principal, Depends(_admin)]
OverseerPrincipal = Annotated[Principal, Depends(_admin_or_operator)]

WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Duplicate id, full nest, or the entity is still in use"},
    412: {"description": "Stale If-Match: the entity changed since you read it"},
    428: {"description": "If-Match is missing: GET the entity and send its ETag"},
}
ETAG_HEADER = {"ETag": {"description": "The entity's version", "schema": {"type": "string"}}}


def links_to_one(path: str, key: str, methods: Sequence[str]) -> dict[str, Any]:
    """OpenAPI links from a created entity to the operations on it: its `id` (or `code`) is
    their path parameter. Clients and the stateful fuzzer follow them."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    field = "code" if key == "code" else "id"
    return {
        f"{method.capitalize()}Created": {
            "operationRef": f"#/paths/{pointer}/{method}",
            "parameters": {key: f"$response.body#/{field}"},
        }
        for method in methods
    }


def actor_of(principal: Principal) -> service.Actor:
    return service.Actor(principal.credential_id, principal.role.value)


@contextlib.asynccontextmanager
async def writing(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction for a write; the outbox relay is woken once it commits."""
    try:
        async with infra_of(request).sessions() as session, session.begin():
            yield session
    except IntegrityError:
        raise Problem(
            409,
            "Conflict",
            "Another write got there first (a duplicate id, or a reference that is still in "
            "use); nothing was changed. Read the current state and retry.",
            kind="conflict",
        ) from None
    relay = getattr(request.app.state, "relay", None)
    if relay is not None:
        relay.notify()


async def paged(
    session: AsyncSession, query: Any, order: Any, limit: int, offset: int
) -> tuple[int, Sequence[Any]]:
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.scalars(query.order_by(order).limit(limit).offset(offset))).all()
    return total, rows


def with_etag(response: Response, row: Row) -> None:
    response.headers["ETag"] = service.etag(row.version)


def hidden(kind: str, key: str) -> Problem:
    return Problem(404, "Not found", f"No {kind} {key!r} that you may see.")


def authenticator_of(request: Request) -> Authenticator:
    return request.app.state.authenticator  # type: ignore[no-any-return]
