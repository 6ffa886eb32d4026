"""Credential use cases: issue, rotate and revoke, each audited; a revocation is published on
airgrid.registry.changes so that every replica of every service drops the key at once.

Every function runs inside the caller's transaction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from airgrid.auth import Credential, Role, issue_credential
from airgrid.db import utcnow
from airgrid.problems import Problem
from services.registry import service
from services.registry.changes import publish_revoked
from services.registry.models import DepartmentRow, NestRow
from services.registry.schemas import CredentialCreate


def _hidden(credential_id: str) -> Problem:
    return Problem(404, "Not found", f"No credential {credential_id!r} that you may see.")


async def check_scope(session: AsyncSession, body: CredentialCreate) -> None:
    if body.role == Role.DEPARTMENT:
        if not body.department or await session.get(DepartmentRow, body.department) is None:
            raise Problem(
                422,
                "Unknown department",
                "A department credential needs an existing `department` code.",
                errors=[{"field": "department", "message": "unknown department"}],
            )
    if body.role == Role.GATEWAY:
        if not body.nest_id or await session.get(NestRow, body.nest_id) is None:
            raise Problem(
                422,
                "Unknown nest",
                "A gateway credential needs an existing `nest_id`.",
                errors=[{"field": "nest_id", "message": "unknown nest"}],
            )
    if body.expires_at is not None and (
        body.expires_at.tzinfo is None or body.expires_at <= utcnow()
    ):
        raise Problem(
            422,
            "Invalid expiry",
            "expires_at must be in the future and carry a UTC offset.",
            errors=[{"field": "expires_at", "message": "in the past or without offset"}],
        )


async def issue(
    session: AsyncSession, *, body: CredentialCreate, actor: service.Actor
) -> tuple[Credential, str]:
    """A new credential of the scope `body` names, and its key (shown once)."""
    await check_scope(session, body)
    row, key = issue_credential(
        session,
        role=body.role,
        department=body.department if body.role == Role.DEPARTMENT else None,
        nest_id=body.nest_id if body.role == Role.GATEWAY else None,
        label=body.label,
        expires_at=body.expires_at,
    )
    await session.flush()
    service.audit(
        session,
        actor=actor,
        action="create",
        kind="credential",
        entity=row.id,
        before=None,
        after=service.credential_document(row),
    )
    return row, key


async def rotate(
    session: AsyncSession, *, credential_id: str, grace_seconds: int, actor: service.Actor
) -> tuple[Credential, str]:
    """A new key of the same scope; the old one ends now, or after `grace_seconds`."""
    old = await session.get(Credential, credential_id, with_for_update=True)
    if old is None:
        raise _hidden(credential_id)
    if old.revoked_at is not None:
        raise Problem(
            409,
            "Credential revoked",
            f"Credential {credential_id} is revoked; issue a new one with POST /v1/credentials.",
            kind="credential-revoked",
        )
    before = service.credential_document(old)
    new, key = issue_credential(
        session,
        role=Role(old.role),
        department=old.department,
        nest_id=old.nest_id,
        label=old.label,
        expires_at=old.expires_at,
    )
    new.replaces = old.id
    if grace_seconds == 0:
        old.revoked_at = utcnow()
        publish_revoked(session, old.id)
    else:
        ends = utcnow() + timedelta(seconds=grace_seconds)
        old.expires_at = min(old.expires_at, ends) if old.expires_at else ends
    await session.flush()
    service.audit(
        session,
        actor=actor,
        action="rotate",
        kind="credential",
        entity=old.id,
        before=before,
        after=service.credential_document(old),
    )
    service.audit(
        session,
        actor=actor,
        action="create",
        kind="credential",
        entity=new.id,
        before=None,
        after=service.credential_document(new),
    )
    return new, key


async def revoke(session: AsyncSession, *, credential_id: str, actor: service.Actor) -> None:
    """Ends a credential at once; revoking a revoked one changes nothing."""
    row = await session.get(Credential, credential_id, with_for_update=True)
    if row is None:
        raise _hidden(credential_id)
    if row.revoked_at is None:
        before = service.credential_document(row)
        row.revoked_at = utcnow()
        await session.flush()
        service.audit(
            session,
            actor=actor,
            action="revoke",
            kind="credential",
            entity=row.id,
            before=before,
            after=service.credential_document(row),
        )
        publish_revoked(session, row.id)
