"""Registry REST resource: credentials (admin writes; admin and operator reads, never a
secret). Issuing, rotating and revoking are the use cases of credentials.py."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from airgrid.auth import Credential, Role
from airgrid.db import utcnow
from airgrid.query_params import Limit, Offset
from services.registry import credentials
from services.registry.api_deps import (
    AdminPrincipal,
    InfraDep,
    OverseerPrincipal,
    actor_of,
    authenticator_of,
    hidden,
    links_to_one,
    paged,
    writing,
)
from services.registry.schemas import (
    CredentialCreate,
    CredentialIssued,
    CredentialRead,
    CredentialRotate,
    Page,
)

router = APIRouter()


# -- credentials -------------------------------------------------------------------------


def _credential_read(row: Credential) -> CredentialRead:
    return CredentialRead(
        id=row.id,
        role=Role(row.role),
        department=row.department,
        nest_id=row.nest_id,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        replaces=row.replaces,
    )


@router.post(
    "/credentials",
    status_code=201,
    response_model=CredentialIssued,
    tags=["access"],
    responses={
        201: {
            "links": links_to_one(
                "/v1/credentials/{credential_id}", "credential_id", ("get", "delete")
            )
        }
    },
    summary="Issue a credential (admin); the key is returned once",
)
async def create_credential(
    body: CredentialCreate, principal: AdminPrincipal, request: Request
) -> CredentialIssued:
    async with writing(request) as session:
        row, key = await credentials.issue(session, body=body, actor=actor_of(principal))
    return CredentialIssued(
        id=row.id,
        role=body.role,
        department=row.department,
        nest_id=row.nest_id,
        label=row.label,
        expires_at=row.expires_at,
        key=key,
    )


@router.get(
    "/credentials",
    response_model=Page[CredentialRead],
    tags=["access"],
    summary="List credentials, never their secrets (admin, operator)",
)
async def list_credentials(
    principal: OverseerPrincipal,
    infra: InfraDep,
    role: Role | None = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    state: Literal["active", "revoked", "expired"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CredentialRead]:
    query = select(Credential)
    if role:
        query = query.where(Credential.role == role.value)
    if department:
        query = query.where(Credential.department == department)
    now = utcnow()
    if state == "revoked":
        query = query.where(Credential.revoked_at.is_not(None))
    elif state == "expired":
        query = query.where(Credential.revoked_at.is_(None)).where(Credential.expires_at <= now)
    elif state == "active":
        query = query.where(Credential.revoked_at.is_(None)).where(
            Credential.expires_at.is_(None) | (Credential.expires_at > now)
        )
    async with infra.sessions() as session:
        total, rows = await paged(session, query, Credential.created_at, limit, offset)
    items = [_credential_read(r) for r in rows]
    return Page[CredentialRead](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/credentials/{credential_id}",
    response_model=CredentialRead,
    tags=["access"],
    summary="One live credential, never its secret (admin, operator)",
    description="A revoked (deleted) credential answers 404; `GET /v1/credentials?state=revoked` "
    "and the audit log still show it.",
)
async def get_credential(
    credential_id: str, principal: OverseerPrincipal, infra: InfraDep
) -> CredentialRead:
    async with infra.sessions() as session:
        row = await session.get(Credential, credential_id)
    if row is None or row.revoked_at is not None:
        raise hidden("credential", credential_id)
    return _credential_read(row)


@router.post(
    "/credentials/{credential_id}/rotate",
    status_code=201,
    response_model=CredentialIssued,
    tags=["access"],
    responses={409: {"description": "The credential is already revoked"}},
    summary="Rotate a credential (admin): a new key of the same scope; the old one ends",
)
async def rotate_credential(
    credential_id: str, body: CredentialRotate, principal: AdminPrincipal, request: Request
) -> CredentialIssued:
    async with writing(request) as session:
        new, key = await credentials.rotate(
            session,
            credential_id=credential_id,
            grace_seconds=body.grace_seconds,
            actor=actor_of(principal),
        )
    authenticator_of(request).forget(credential_id)
    return CredentialIssued(
        id=new.id,
        role=Role(new.role),
        department=new.department,
        nest_id=new.nest_id,
        label=new.label,
        expires_at=new.expires_at,
        replaces=new.replaces,
        key=key,
    )


@router.delete(
    "/credentials/{credential_id}",
    status_code=204,
    tags=["access"],
    summary="Revoke a credential (admin): it stops working at once",
    description="Afterwards `GET /v1/credentials/{credential_id}` answers 404; revoking again "
    "answers 204.",
)
async def revoke_credential(
    credential_id: str, principal: AdminPrincipal, request: Request
) -> Response:
    async with writing(request) as session:
        await credentials.revoke(session, credential_id=credential_id, actor=actor_of(principal))
    authenticator_of(request).forget(credential_id)
    return Response(status_code=204)
