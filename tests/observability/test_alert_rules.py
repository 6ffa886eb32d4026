"""The alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
and cover what operators are paged for."""

from __future__ import annotations

import subprocess

from tests.observability.promql import ALERT_TESTS, ALERTS, alert_exprs, promtool


def test_promtool_check_rules_passes() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_exprs())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_and_the_required_ones_exist() -> None:
    tested = ALERT_TESTS.read_text()
    alerts = alert_exprs()
    for required in (
        "AirgridSlaBreached",
        "AirgridCoverageBelowTarget",
        "AirgridConsumerLagGrowing",
        "AirgridDlqSpike",
        "AirgridOutboxBacklog",
        "AirgridServiceDown",
    ):
        assert required in alerts
    untested = [name for name in alerts if f"alertname: {name}\n" not in tested]
    assert not untested, untested
