"""Abuse before authentication: a flood of forged keys (well-formed and malformed) neither
locks out a real department nor costs a key hash per malformed or unknown key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

import airgrid.auth
from airgrid.auth import BOOTSTRAP_ADMIN_ID, Credential, hash_secret
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from tests.security.conftest import Services, build

pytestmark = pytest.mark.integration

FORGED = 2_000


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every key hash the services compute (scrypt, the costly part of a verification)."""
    calls: list[str] = []
    original = airgrid.auth.hash_secret

    def counting(secret: str, salt: str) -> str:
        calls.append(salt)
        return original(secret, salt)

    monkeypatch.setattr(airgrid.auth, "hash_secret", counting)
    yield calls


async def bootstrap_admin_key(settings: Settings) -> str:
    """A bootstrap admin row (the one key of free form), made for this test."""
    key = "flood-admin-" + secrets.token_urlsafe(16)
    salt = secrets.token_hex(16)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            row = await session.get(Credential, BOOTSTRAP_ADMIN_ID)
            if row is None:
                row = Credential(id=BOOTSTRAP_ADMIN_ID, role="admin", label="flood test")
                session.add(row)
            row.salt, row.key_hash = salt, hash_secret(key, salt)
    finally:
        await engine.dispose()
    return key


def forged_keys() -> list[str]:
    well_formed = [
        f"ag_{secrets.token_hex(8)}_{secrets.token_urlsafe(24)}" for _ in range(FORGED // 2)
    ]
    malformed = [secrets.token_urlsafe(12 + n % 40) for n in range(FORGED // 2)]
    return [k for pair in zip(well_formed, malformed, strict=True) for k in pair]


async def test_a_flood_of_forged_keys_neither_locks_out_nor_hashes(
    services: Services, hashes: list[str]
) -> None:
    admin_key = await bootstrap_admin_key(services.settings)
    settings = services.settings.model_copy(update={"admin_key": admin_key})
    app = build("registry", settings)
    fire = services.auth("fire")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        assert (await client.get("/v1/nests", headers=fire)).status_code == 200
        admin = {"Authorization": f"Bearer {admin_key}"}
        assert (await client.get("/v1/credentials", headers=admin)).status_code == 200
        hashes.clear()
        # The real key's cache entry lapses, as it would during a long flood: its requests go
        # past the address throttle to a verification every time.
        authenticator = app.state.authenticator
        authenticator.cache_seconds = 0.0
        lapsed = authenticator.clock() + 3600
        authenticator.clock = lambda: lapsed

        codes: dict[int, int] = {}
        forged_hashes = 0
        for n, key in enumerate(forged_keys()):
            before = len(hashes)
            r = await client.get("/v1/nests", headers={"Authorization": f"Bearer {key}"})
            forged_hashes += len(hashes) - before
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if n % 100 == 0:
                real = await client.get("/v1/nests", headers=fire)
                assert real.status_code == 200, (n, real.text)
        assert forged_hashes == 0, f"{forged_hashes} key hashes for forged keys"
        assert set(codes) <= {401, 429}, codes
        assert codes.get(429, 0) > 0, codes  # the address was throttled

        # Guessing a real credential's secret is throttled per address before any hash. The
        # throttle's clock stands still here, so that no refill comes between the guesses.
        throttle = app.state.authenticator.failures
        frozen = throttle.clock()
        throttle.clock = lambda: frozen
        fire_id = services.keys["fire"].split("_")[1]
        hashes.clear()
        guessed = [
            await client.get(
                "/v1/nests",
                headers={"Authorization": f"Bearer ag_{fire_id}_{secrets.token_urlsafe(24)}"},
            )
            for _ in range(50)
        ]
        assert {r.status_code for r in guessed} == {429}
        assert hashes == []
        assert (await client.get("/v1/nests", headers=fire)).status_code == 200
