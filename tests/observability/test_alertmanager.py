"""The Alertmanager routing of deploy/alertmanager/alertmanager.yml: `amtool check-config`,
`amtool config routes test` cases, and a real Alertmanager that receives alerts on its API
and calls webhook receivers served by this test (routing and the broker-outage inhibition)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from airgrid.topics import DEPARTMENT_CODES
from tests.conftest import free_port
from tests.eventually import eventually, until
from tests.observability.promql import ROOT

CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
WEBHOOK_BASE = "http://airgrid-alert-webhooks:9095"
INSTALL = "install the Debian package: apt-get install -y prometheus-alertmanager"
DEADLINE_S = 60.0


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(f"{' / '.join(names)} is missing: {INSTALL}")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("amtool"), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(DEPARTMENT_CODES) + 1} receivers" in result.stdout


def receivers_of(*labels: str) -> list[str]:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


@pytest.mark.parametrize(
    "labels",
    [
        ("alertname=AirgridServiceDown", "job=airgrid-telemetry"),
        ("alertname=AirgridConsumerLagGrowing", "group=airgrid-telemetry"),
        ("alertname=AirgridBrokerUnreachable", "job=kafka"),
    ],
)
def test_the_operators_get_an_alert_of_no_department(labels: tuple[str, ...]) -> None:
    assert receivers_of(*labels) == ["operators"]


@pytest.mark.parametrize("code", DEPARTMENT_CODES)
def test_a_departments_sla_breach_goes_to_it_and_the_operators_only(code: str) -> None:
    for alert in ("AirgridSlaBreached", "AirgridSlaAtRiskRising"):
        labels = (f"alertname={alert}", f"department={code}", "priority=1", "severity=critical")
        assert receivers_of(*labels) == ["operators", f"department-{code}"]


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        ("waterlogging", "water"),
        ("waterlogging", "urban"),
        ("waterlogging", "emergency"),
        ("illegal_construction", "resources"),
    ],
)
def test_a_case_alert_goes_to_its_owner_department_and_the_operators_only(
    scenario: str, code: str
) -> None:
    labels = ("alertname=AirgridCaseOpened", f"department={code}", f"scenario={scenario}")
    assert receivers_of(*labels, "severity=warning") == ["operators", f"department-{code}"]


def test_traffic_breach_does_not_reach_fire() -> None:
    receivers = receivers_of("alertname=AirgridSlaBreached", "department=traffic")
    assert "department-fire" not in receivers
    assert receivers == ["operators", "department-traffic"]


class Webhooks:
    """An HTTP server standing in for every webhook receiver: what arrived, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def has_alerts_at(self, path: str) -> bool:
        return bool(self.alerts_at(path))

    def alerts_at(self, path: str) -> list[dict[str, str]]:
        return [
            alert["labels"]
            for where, body in list(self.received)
            if where == path
            for alert in body["alerts"]
        ]


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()
    hooks.thread.start()
    try:
        yield hooks
    finally:
        hooks.server.shutdown()
        hooks.server.server_close()


@pytest.fixture
def alertmanager(webhooks: Webhooks, tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on a free port with the project's config, its webhooks pointed at
    this test's server and its first wait per group cut to 1 s; stopped at the end."""
    config = CONFIG.read_text().replace(WEBHOOK_BASE, webhooks.url)
    config = config.replace("group_wait: 30s", "group_wait: 1s")
    (tmp_path / "alertmanager.yml").write_text(config)
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary("alertmanager", "prometheus-alertmanager"),
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def alert(**labels: str) -> dict[str, Any]:
    return {"labels": labels, "annotations": {"summary": labels["alertname"]}}


async def test_a_real_alertmanager_routes_to_the_webhooks_and_inhibits_per_drone_pages(
    alertmanager: str, webhooks: Webhooks
) -> None:
    async with httpx.AsyncClient(base_url=alertmanager, timeout=5.0) as client:

        async def ready() -> bool | None:
            try:
                return (await client.get("/-/ready")).status_code == 200 or None
            except httpx.HTTPError:
                return None

        await eventually(ready, DEADLINE_S, "alertmanager ready")
        posted = [
            alert(alertname="AirgridSlaBreached", department="fire", priority="1"),
            alert(alertname="AirgridSlaBreached", department="traffic", priority="2"),
            alert(alertname="AirgridBrokerUnreachable", job="kafka", instance="kafka-0:9308"),
            *(alert(alertname="AirgridDroneLinkLost", drone_id=f"d-{n}") for n in range(5)),
        ]
        r = await client.post("/api/v2/alerts", json=posted)
        assert r.status_code == 200, r.text

        async def inhibited() -> bool | None:
            alerts = (await client.get("/api/v2/alerts")).json()
            per_drone = [a for a in alerts if a["labels"]["alertname"] == "AirgridDroneLinkLost"]
            held = [a for a in per_drone if a["status"]["inhibitedBy"]]
            return True if len(per_drone) == len(held) == 5 else None

        await eventually(inhibited, DEADLINE_S, "the per-drone alerts inhibited")
        await until(
            lambda: (
                {a["alertname"] for a in webhooks.alerts_at("/operators")}
                >= {"AirgridSlaBreached", "AirgridBrokerUnreachable"}
            ),
            DEADLINE_S,
            "the operators' pages",
        )
        await until(
            lambda: bool(webhooks.alerts_at("/departments/fire")), DEADLINE_S, "fire's page"
        )
        await until(
            lambda: bool(webhooks.alerts_at("/departments/traffic")), DEADLINE_S, "traffic's page"
        )

    assert {a["department"] for a in webhooks.alerts_at("/departments/fire")} == {"fire"}
    assert {a["department"] for a in webhooks.alerts_at("/departments/traffic")} == {"traffic"}
    operators = webhooks.alerts_at("/operators")
    assert {a["department"] for a in operators if "department" in a} == {"fire", "traffic"}
    assert not [a for a in operators if a["alertname"] == "AirgridDroneLinkLost"]
    assert {path for path, _ in webhooks.received} == {
        "/operators",
        "/departments/fire",
        "/departments/traffic",
    }


async def test_a_case_of_two_owners_pages_each_owner_once_and_no_other_department(
    alertmanager: str, webhooks: Webhooks
) -> None:
    """Prometheus raises one AirgridCaseOpened per owner department of the case's scenario
    (deploy/prometheus/alerts_test.yaml); each reaches its own department and the operators."""
    async with httpx.AsyncClient(base_url=alertmanager, timeout=5.0) as client:

        async def ready() -> bool | None:
            try:
                return (await client.get("/-/ready")).status_code == 200 or None
            except httpx.HTTPError:
                return None

        await eventually(ready, DEADLINE_S, "alertmanager ready")
        posted = [
            alert(alertname="AirgridCaseOpened", department=code, scenario="smoke")
            for code in ("fire", "environment")
        ]
        r = await client.post("/api/v2/alerts", json=posted)
        assert r.status_code == 200, r.text
        for path in ("/departments/fire", "/departments/environment"):
            await until(partial(webhooks.has_alerts_at, path), DEADLINE_S, path)
        await until(
            lambda: len(webhooks.alerts_at("/operators")) >= 2, DEADLINE_S, "operators' pages"
        )

    for code in ("fire", "environment"):
        pages = webhooks.alerts_at(f"/departments/{code}")
        assert {(a["alertname"], a["department"], a["scenario"]) for a in pages} == {
            ("AirgridCaseOpened", code, "smoke")
        }
    assert {a["department"] for a in webhooks.alerts_at("/operators")} == {"fire", "environment"}
    assert {path for path, _ in webhooks.received} == {
        "/operators",
        "/departments/fire",
        "/departments/environment",
    }
