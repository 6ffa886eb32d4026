"""Proof: a real Prometheus scrapes the running stack (three services, embedded broker,
PostgreSQL, simulator load); every dashboard panel's query, evaluated through the Prometheus
HTTP API, answers without error and with data."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from airgrid.bus import ensure_topics
from airgrid.config import Settings
from entrypoints.stack import write_demo_credentials
from tests.conftest import free_port
from tests.observability.promql import panel_queries

pytestmark = pytest.mark.e2e

SERVICES = ("registry", "telemetry", "dispatch")
DEADLINE_S = 120.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proof-logs")


def _log_tails(logs: Path) -> str:
    """The last warnings and errors of each process, for a failure message."""
    tails = []
    for path in sorted(logs.glob("*.log")):
        lines = [
            line for line in path.read_text(errors="replace").splitlines() if '"info"' not in line
        ]
        tails.append(f"--- {path.name}\n" + "\n".join(line[:300] for line in lines[-8:]))
    return "\n".join(tails)


@pytest.fixture(scope="module")
async def stack_urls(
    logs: Path, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, str]]:
    """The three services and the simulator, as processes, on free ports."""
    state = tmp_path_factory.mktemp("proof-state")
    prefix = f"p{uuid.uuid4().hex[:8]}."
    s = settings.model_copy(update={"topic_prefix": prefix, "state_dir": state})
    await ensure_topics(s)
    credentials = await write_demo_credentials(s)
    ports = {name: free_port() for name in SERVICES}
    env = dict(os.environ)
    env.update(
        {
            "AIRGRID_KAFKA_BOOTSTRAP": s.bootstrap_servers,
            "AIRGRID_DATABASE_URL": s.sqlalchemy_url,
            "AIRGRID_TOPIC_PREFIX": s.topic_prefix,
            "AIRGRID_STATE_DIR": str(state),
            "AIRGRID_OUTBOX_POLL_SECONDS": "0.2",
            **{f"AIRGRID_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
    )
    children: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, *args: str) -> None:
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *args],
            env=env,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

    for name in SERVICES:
        start(name, "serve", name)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in SERVICES:
                deadline = time.monotonic() + 90
                while True:
                    if children[name].poll() is not None:
                        log = (logs / f"{name}.log").read_text()[-3000:]
                        raise AssertionError(f"{name} exited:\n{log}")
                    try:
                        if (await client.get(f"{urls[name]}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, f"{name} not ready in 90 s"
                    await asyncio.sleep(0.3)
        start("sim", "sim", "--rate", "60", "--duration", "300", "--credentials", str(credentials))
        yield urls
    finally:
        for child in children.values():
            _stop(child)


@pytest.fixture(scope="module")
def prometheus_url(
    stack_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "prometheus is missing: install the Debian package `prometheus` "
            "(apt-get install -y prometheus); .ci/run does it on a fresh machine"
        )
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        # 2 s: a scrape of a process on a loaded 2-core machine may take more than 1 s.
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {
                "job_name": f"airgrid-{name}",
                "static_configs": [{"targets": [url.removeprefix("http://")]}],
            }
            for name, url in stack_urls.items()
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=(work / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (work / "prometheus.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready in 30 s"
            time.sleep(0.3)
        yield url
    finally:
        _stop(process)


LOAD = (
    "sum(airgrid_dispatch_decisions_total)",
    "sum(airgrid_telemetry_records_total)",
    "sum(airgrid_incidents_accepted_total)",
    'count(up{job=~"airgrid-.*"} == 1)',
)


async def _evaluate(client: httpx.AsyncClient, url: str, expr: str) -> tuple[str, list[float]]:
    """('' or the error, the result's sample values)."""
    r = await client.get(f"{url}/api/v1/query", params={"query": expr})
    body = r.json()
    if r.status_code != 200 or body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return "", [float(series["value"][1]) for series in body["data"]["result"]]


async def test_every_dashboard_query_returns_data_from_the_running_stack(
    prometheus_url: str, logs: Path
) -> None:
    queries = list(panel_queries())
    assert len(queries) > 40
    async with httpx.AsyncClient(timeout=10.0) as client:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            load = {expr: (await _evaluate(client, prometheus_url, expr))[1] for expr in LOAD}
            flowing = all(values and values[0] > 0 for values in load.values())
            results = {q: await _evaluate(client, prometheus_url, q.expr) for q in queries}
            errors = {q: e for q, (e, _) in results.items() if e}
            empty = [q for q, (e, values) in results.items() if not e and not values]
            if errors or (flowing and not empty) or time.monotonic() > deadline:
                break
            await asyncio.sleep(2.0)
    assert not errors, {f"{q.dashboard} / {q.panel} / {q.ref}": e for q, e in errors.items()}
    assert flowing, (
        f"the stack did not carry load (decisions, telemetry, incidents, up): {load}\n"
        + _log_tails(logs)
    )
    assert not empty, "no data: " + "; ".join(f"{q.dashboard} / {q.panel}: {q.expr}" for q in empty)
    observed = sum(1 for _, values in results.values() if any(v == v for v in values))
    print(
        f"\nproof: {len(queries)} panel queries answered; {observed} with a number, "
        f"{len(queries) - observed} NaN only (quantiles of histograms without observations yet)"
    )
