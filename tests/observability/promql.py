"""What the observability tests share: the dashboards' queries with template variables
substituted, the metric names a PromQL expression refers to, the metric names the code
exports, and promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy/grafana/dashboards"
ALERTS = ROOT / "deploy/prometheus/alerts.yaml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts_test.yaml"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources"

# What Grafana would put in place of its variables when the proof test or promtool sees them.
RATE_INTERVAL = "15s"
VARIABLE_DEFAULTS = {"department": "fire"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan", "Inf", "NaN", "atan2"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str  # variables substituted


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError(
            "promtool is missing: install the Debian package `prometheus` "
            "(apt-get install -y prometheus); .ci/run does it on a fresh machine"
        )
    return path


def load_dashboards() -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__interval", RATE_INTERVAL)
    for name, value in VARIABLE_DEFAULTS.items():
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    if "$" in expr:
        raise AssertionError(f"unknown template variable in {expr!r}")
    return expr


def panel_queries() -> Iterator[PanelQuery]:
    """Every PromQL query of every dashboard."""
    for name, dashboard in load_dashboards().items():
        for panel in dashboard["panels"]:  # type: ignore[attr-defined]
            for target in panel.get("targets", []):
                if target["datasource"]["type"] != "prometheus":
                    continue  # the live map's SQL: tests/observability/test_map_sql.py
                yield PanelQuery(name, panel["title"], target["refId"], substitute(target["expr"]))


def alert_exprs() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, keywords,
    label names, label values, durations or numbers."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = match.group()
        before = s[match.start() - 1] if match.start() > 0 else " "
        if before.isdigit() or before == ".":
            continue  # 1e3
        if s[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if token not in _KEYWORDS:
            names.add(token)
    return names


def exported_metric_names() -> set[str]:
    """Every sample name the services' registry can expose, plus Prometheus's own `up`."""
    from prometheus_client import REGISTRY

    import services.dispatch.app
    import services.registry.app
    import services.telemetry.app  # noqa: F401
    from services.dispatch.domain.core import DispatchCore
    from services.dispatch.metrics import watch_core
    from services.telemetry.metrics import initialise_labels

    watch_core(SimpleNamespace(core=DispatchCore()))
    initialise_labels()
    names = {"up"}
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def check_exprs_parse(exprs: dict[str, str], workdir: Path) -> str:
    """promtool's PromQL parser over every expression, as recording rules; '' when all parse."""
    rules = {
        "groups": [
            {
                "name": "lint",
                "rules": [
                    {"record": f"lint:expr_{i}", "expr": expr}
                    for i, expr in enumerate(exprs.values())
                ],
            }
        ]
    }
    path = workdir / "lint-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode == 0:
        return ""
    index = {f"expr_{i}": label for i, label in enumerate(exprs)}
    report = result.stdout + result.stderr
    for key, label in index.items():
        report = report.replace(key, f"{key} ({label})")
    return report
