"""Dashboard lint: uids, datasources, units and descriptions, every query parses as PromQL,
every metric a dashboard or alert names is exported by the code, and the JSON is what
deploy/dashboards.py renders."""

from __future__ import annotations

from pathlib import Path

import yaml

from deploy.generate import drift
from tests.observability.promql import (
    DATASOURCES,
    alert_exprs,
    check_exprs_parse,
    exported_metric_names,
    load_dashboards,
    metric_names,
    panel_queries,
)

EXPECTED = {
    "operations",
    "dispatch",
    "telemetry",
    "department",
    "infrastructure",
    "operator-map",
}


def _datasource_uids() -> set[str]:
    return {
        d["uid"]
        for path in sorted(DATASOURCES.glob("*.yaml"))
        for d in yaml.safe_load(path.read_text())["datasources"]
    }


def test_the_dashboards_exist_with_unique_uids_and_titles() -> None:
    dashboards = load_dashboards()
    assert {name.removesuffix(".json") for name in dashboards} == EXPECTED
    uids = [d["uid"] for d in dashboards.values()]
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


def test_every_panel_has_a_unique_id_unit_description_and_a_provisioned_datasource() -> None:
    uids = _datasource_uids()
    for name, dashboard in load_dashboards().items():
        panels = dashboard["panels"]
        ids = [p["id"] for p in panels]  # type: ignore[attr-defined]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels:  # type: ignore[attr-defined]
            where = f"{name} / {panel['title']}"
            assert panel["description"].strip(), f"{where}: no description"
            assert panel["fieldConfig"]["defaults"]["unit"], f"{where}: no unit"
            assert panel["datasource"]["uid"] in uids, f"{where}: unknown datasource"
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids, f"{where}: unknown datasource"


def test_thresholds_sit_where_operators_act() -> None:
    def steps(title: str) -> list[float]:
        for dashboard in load_dashboards().values():
            for panel in dashboard["panels"]:  # type: ignore[attr-defined]
                if panel["title"] == title:
                    found = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                    return [s["value"] for s in found if s["value"] is not None]
        raise AssertionError(f"no panel {title!r}")

    assert steps("Decision latency") == [0.005, 0.05]
    assert steps("Time to scene by priority") == [120, 300]
    assert steps("Share within 300 s") == [0.95, 0.99]


def test_department_dashboard_is_templated_by_department() -> None:
    dashboard = load_dashboards()["department.json"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}  # type: ignore[index]
    assert "department" in variables
    assert len(variables["department"]["options"]) == 11
    for panel in dashboard["panels"]:  # type: ignore[attr-defined]
        for target in panel["targets"]:
            assert 'department="$department"' in target["expr"], panel["title"]


def test_every_query_and_alert_parses_as_promql(tmp_path: Path) -> None:
    exprs = {f"{q.dashboard} / {q.panel} / {q.ref}": q.expr for q in panel_queries()}
    exprs |= {f"alert {name}": expr for name, expr in alert_exprs().items()}
    assert len(exprs) > 50
    report = check_exprs_parse(exprs, tmp_path)
    assert report == "", report


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    report = check_exprs_parse({"broken": "sum by (le (rate(x[5m]))"}, tmp_path)
    assert "broken" in report


def test_every_metric_named_is_exported_by_the_code() -> None:
    exported = exported_metric_names()
    named = {q.dashboard + " / " + q.panel: metric_names(q.expr) for q in panel_queries()}
    named |= {"alert " + a: metric_names(e) for a, e in alert_exprs().items()}
    missing = {
        where: sorted(n for n in names if n not in exported) for where, names in named.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, missing
    assert "airgrid_time_to_scene_seconds_bucket" in metric_names(
        "histogram_quantile(0.95, sum by (le) (rate(airgrid_time_to_scene_seconds_bucket[5m])))"
    )


def test_dashboards_and_generated_manifests_do_not_drift_from_the_code() -> None:
    assert drift() == [], "run `python -m deploy.generate` and commit the result"
