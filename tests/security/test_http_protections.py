"""Cross-cutting HTTP protections: per-credential rate limit, body size limit, credentials kept
out of logs and error bodies."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from airgrid.config import Settings
from airgrid.rate_limit import RateLimiter
from airgrid.service_app import redact
from tests.security.conftest import Services, build, issue_keys

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def strict_dispatch(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A dispatch app with a tight budget (3 at once, then 1 per second) and a 4 KiB body cap."""
    s: Settings = services.settings.model_copy(
        update={"rate_limit_per_second": 1.0, "rate_limit_burst": 3, "max_body_bytes": 4096}
    )
    app = build("dispatch", s)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as client,
    ):
        yield client


async def test_a_credential_over_its_budget_gets_429_with_retry_after(
    services: Services, strict_dispatch: httpx.AsyncClient
) -> None:
    fire, police = services.auth("fire"), services.auth("police")
    answers = [(await strict_dispatch.get("/v1/incidents", headers=fire)) for _ in range(5)]
    codes = [r.status_code for r in answers]
    assert codes[:3] == [200, 200, 200], codes
    limited = [r for r in answers if r.status_code == 429]
    assert limited, codes
    for r in limited:
        assert r.headers["content-type"].startswith(PROBLEM)
        assert int(r.headers["retry-after"]) >= 1
        body = r.json()
        assert body["status"] == 429 and body["type"].endswith("/rate-limited")
        assert services.keys["fire"] not in r.text
    # The budget is per credential: another department is not held back by fire's burst.
    r = await strict_dispatch.get("/v1/incidents", headers=police)
    assert r.status_code == 200, r.text
    # Probes are never rate limited.
    for _ in range(6):
        assert (await strict_dispatch.get("/healthz")).status_code == 200


async def test_a_body_over_the_limit_gets_413_problem(
    services: Services, strict_dispatch: httpx.AsyncClient
) -> None:
    headers = {**services.auth("operator"), "Idempotency-Key": uuid.uuid4().hex}
    r = await strict_dispatch.post(
        "/v1/incidents", content=b'{"description": "' + b"x" * 10_000 + b'"}', headers=headers
    )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"].endswith("/body-too-large")


async def test_a_chunked_body_over_the_limit_gets_413_problem(
    services: Services, strict_dispatch: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    # A credential of its own: the shared ones may have spent their budget in other tests,
    # and a 429 would say nothing of the body limit.
    fresh = (await issue_keys(services.settings, "N-NONE"))["fire"]
    headers = {"Authorization": f"Bearer {fresh}", "Content-Type": "application/json"}
    r = await strict_dispatch.post("/v1/incidents", content=chunks(), headers=headers)
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"].endswith("/body-too-large")


async def test_a_credential_over_its_budget_gets_429_before_its_body_is_read(
    services: Services, strict_dispatch: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    fresh = (await issue_keys(services.settings, "N-NONE"))["fire"]
    auth = {"Authorization": f"Bearer {fresh}"}
    codes: list[int] = []
    while 429 not in codes and len(codes) < 20:  # spend the burst
        codes.append((await strict_dispatch.get("/v1/incidents", headers=auth)).status_code)
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429, codes
    headers = {**auth, "Content-Type": "application/json"}
    r = await strict_dispatch.post("/v1/incidents", content=chunks(), headers=headers)
    assert r.status_code == 429, r.text
    assert r.json()["type"].endswith("/rate-limited")


async def test_credentials_never_reach_logs_or_error_bodies(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = await issue_keys(services.settings, "N-NONE")
    forged = "ag_0123456789abcdef_" + "S3cr3tS3cr3tS3cr3tS3cr3t"
    secrets = [*fresh.values(), forged]
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    for key in secrets:
        auth = {"Authorization": f"Bearer {key}"}
        for service, client in services.clients.items():
            for method, url, kwargs in (
                ("GET", "/v1/nowhere", {}),
                ("GET", "/v1/drones/%00%ff/state", {}),
                ("POST", "/v1/incidents", {"content": b"{not json"}),
                ("POST", "/v1/telemetry", {"json": {"records": [{"drone_id": key}]}}),
                ("POST", "/v1/credentials", {"json": {"role": key}}),
                ("GET", f"/v1/incidents?status={key}", {}),
            ):
                r = await client.request(method, url, headers=auth, **kwargs)
                assert r.status_code < 500, (service, method, url, r.text)
                bodies.append(r.text)
                bodies.extend(f"{k}: {v}" for k, v in r.headers.items())
    everything = caplog.text + "\n".join(bodies)
    for key in secrets:
        assert key not in everything, "a credential leaked into a log line or a response"
        assert key[len("ag_0123456789abcdef_") :] not in everything


def test_redaction_masks_keys_tokens_and_passwords() -> None:
    line = (
        "auth ag_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAA; Authorization: Bearer tok3ntok3n; "
        "password=hunter22; postgresql+asyncpg://bob:pa55word@db/x"
    )
    masked = redact(line)
    for secret in ("AAAAAAAAAAAAAAAAAAAAAAAA", "tok3ntok3n", "hunter22", "pa55word"):
        assert secret not in masked
    assert "ag_0123456789abcdef_***" in masked and "bob:***@db" in masked


def test_token_bucket_grants_the_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.wait_seconds("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_seconds("a") == pytest.approx(0.5)
    assert limiter.wait_seconds("b") == 0.0
    now[0] = 0.5
    assert limiter.wait_seconds("a") == 0.0
