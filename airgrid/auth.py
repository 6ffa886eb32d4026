"""Authentication: bearer API keys stored as scrypt hashes, roles, and the FastAPI dependency."""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from airgrid.db import Base, UTCDateTime, utcnow
from airgrid.problems import Problem
from airgrid.rate_limit import FailedAuthThrottle


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    DEPARTMENT = "department"
    GATEWAY = "gateway"


BOOTSTRAP_ADMIN_ID = "bootstrap-admin"
_KEY_FORMAT = re.compile(r"^ag_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")
# scrypt, OWASP's interactive-login parameters; results are cached so this is paid once a key.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Credential(Base):
    __tablename__ = "credentials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(32), nullable=True)
    nest_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    salt: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaces: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """The credential this one rotated, if any."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the credential's id, role and scope."""

    credential_id: str
    role: Role
    department: str | None = None
    nest_id: str | None = None

    @property
    def caller(self) -> str:
        return self.credential_id


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def new_key() -> tuple[str, str, str]:
    """Returns (credential id, secret, full key as handed to the caller)."""
    credential_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return credential_id, secret, f"ag_{credential_id}_{secret}"


def issue_credential(
    session: AsyncSession,
    *,
    role: Role,
    department: str | None = None,
    nest_id: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[Credential, str]:
    """Adds a new credential to the session; returns it and the key (shown once). A gateway
    credential must name its nest: it may report only that nest's drones."""
    if role is Role.GATEWAY and not nest_id:
        raise ValueError("a gateway credential needs a nest_id")
    credential_id, secret, key = new_key()
    salt = secrets.token_hex(16)
    row = Credential(
        id=credential_id,
        role=role.value,
        department=department,
        nest_id=nest_id,
        label=label,
        salt=salt,
        key_hash=hash_secret(secret, salt),
        expires_at=expires_at,
    )
    session.add(row)
    return row, key


async def bootstrap_admin(sessions: async_sessionmaker[AsyncSession], admin_key: str) -> bool:
    """When there is no credential at all, the configured admin key becomes the first one."""
    async with sessions() as session, session.begin():
        count = await session.scalar(select(func.count()).select_from(Credential))
        if count:
            return False
        salt = secrets.token_hex(16)
        session.add(
            Credential(
                id=BOOTSTRAP_ADMIN_ID,
                role=Role.ADMIN.value,
                label="from AIRGRID_ADMIN_KEY",
                salt=salt,
                key_hash=hash_secret(admin_key, salt),
            )
        )
        return True


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "Unauthorized",
        detail,
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="airgrid"'},
    )


class Authenticator:
    """Verifies bearer keys against the credentials table, with a short positive cache."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache_seconds: float = 30.0,
        *,
        admin_key: str | None = None,
    ):
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self.clock: Callable[[], float] = time.monotonic
        # The bootstrap admin key is the one key not of the ag_<id>_<secret> form; any other
        # such key is refused by its form, with neither a database read nor a hash.
        self._admin_digest = _digest(admin_key) if admin_key else None
        self._cache: dict[str, tuple[Principal, float]] = {}
        self.failures = FailedAuthThrottle()

    def cached(self, key: str) -> Principal | None:
        """The principal of a key verified within cache_seconds; no database, no hash."""
        cached = self._cache.get(_digest(key))
        if cached and cached[1] > self.clock():
            return cached[0]
        return None

    def verified_before(self, key: str) -> bool:
        """Whether this exact key was verified once and not forgotten since (its cache entry may
        have expired). Only the holder of a real key can match: a throttled address may still
        re-verify such a key, so junk sent from its address never locks a real caller out."""
        return _digest(key) in self._cache

    def forget(self, credential_id: str) -> None:
        """Drop a revoked credential from the cache at once."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.credential_id == credential_id:
                del self._cache[digest]

    async def is_current(self, credential_id: str) -> bool:
        """Whether the credential still exists, unrevoked and unexpired, read from the database
        past the cache: for what outlives one request, such as a feed stream. One that is not
        leaves the cache too, so its next request is refused at once."""
        async with self.sessions() as session:
            row = await session.get(Credential, credential_id, populate_existing=True)
        current = (
            row is not None
            and row.revoked_at is None
            and (row.expires_at is None or row.expires_at > utcnow())
        )
        if not current:
            self.forget(credential_id)
        return current

    async def verify(self, key: str) -> Principal:
        digest = _digest(key)
        cached = self._cache.get(digest)
        if cached and cached[1] > self.clock():
            return cached[0]
        match = _KEY_FORMAT.match(key)
        if match is not None:
            credential_id, secret = match.group(1), match.group(2)
        elif self._admin_digest is not None and hmac.compare_digest(digest, self._admin_digest):
            credential_id, secret = BOOTSTRAP_ADMIN_ID, key
        else:
            raise _unauthorized(
                "The bearer credential is malformed: keys look like ag_<16 hex>_<secret>."
            )
        async with self.sessions() as session:
            row = await session.get(Credential, credential_id)
        if row is None or not hmac.compare_digest(hash_secret(secret, row.salt), row.key_hash):
            raise _unauthorized("The bearer credential is not valid; ask an admin for a key.")
        if row.revoked_at is not None:
            raise _unauthorized("This credential was revoked; ask an admin for a new key.")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise _unauthorized("This credential has expired; rotate it.")
        principal = Principal(row.id, Role(row.role), row.department, row.nest_id)
        self._cache[digest] = (principal, self.clock() + self.cache_seconds)
        return principal


async def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("Send `Authorization: Bearer <key>`; see the README for demo keys.")
    authenticator: Authenticator = request.app.state.authenticator
    key = key.strip()
    principal = authenticator.cached(key)
    if principal is not None:
        return principal
    address = request.client.host if request.client else "unknown"
    wait = authenticator.failures.blocked_for(address)
    if wait > 0 and not authenticator.verified_before(key):
        retry_after = max(1, math.ceil(wait))
        raise Problem(
            429,
            "Too many failed authentications",
            f"Too many invalid keys were sent from this address; retry after {retry_after} s "
            "with a valid key.",
            kind="rate-limited",
            headers={"Retry-After": str(retry_after)},
        )
    try:
        return await authenticator.verify(key)
    except Problem as problem:
        if problem.status == 401:
            authenticator.failures.failed(address)
        raise


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Problem(
            403,
            "Forbidden",
            f"Role {principal.role.value} may not do this; it needs one of: {allowed}.",
            kind="forbidden",
        )
