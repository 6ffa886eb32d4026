"""Integration: dispatch drops a key revoked through the registry at once, as the registry
and telemetry services do, instead of trusting its authenticator's cache."""

from __future__ import annotations

import uuid

import httpx
import pytest

from airgrid.bus import ensure_topics
from airgrid.config import Settings
from services.dispatch.app import build_app
from tests.eventually import eventually
from tests.integration.registry_rig import issue_keys, running_registry

pytestmark = pytest.mark.integration


async def test_a_key_revoked_at_the_registry_stops_at_dispatch_at_once(
    settings: Settings,
) -> None:
    isolated = settings.model_copy(update={"topic_prefix": f"v{uuid.uuid4().hex[:8]}."})
    await ensure_topics(isolated)
    keys = await issue_keys(isolated)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    fire = {"Authorization": f"Bearer {keys['fire']}"}
    dispatch = build_app(isolated)
    async with (
        running_registry(isolated) as (_, registry),
        dispatch.router.lifespan_context(dispatch),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=dispatch), base_url="http://dispatch"
        ) as client,
    ):
        # The key is verified once and cached for cache_seconds (30 s by default).
        assert dispatch.state.authenticator.cache_seconds >= 30
        assert (await client.get("/v1/incidents", headers=fire)).status_code == 200
        fire_id = keys["fire"].split("_")[1]
        revoked = await registry.delete(f"/v1/credentials/{fire_id}", headers=admin)
        assert revoked.status_code == 204

        async def refused() -> httpx.Response | None:
            r = await client.get("/v1/incidents", headers=fire)
            return r if r.status_code == 401 else None

        # Far below the cache's 30 s: only the revocation hook can make it.
        r = await eventually(refused, 15.0, "dispatch to refuse the revoked key")
        assert "revoked" in r.json()["detail"]
