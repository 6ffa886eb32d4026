"""The series AirgridCaseOpened reads: one per (scenario, owner department), at zero from the
catalogue before any case, and one count per owner when a case opens."""

from __future__ import annotations

from prometheus_client import REGISTRY

from airgrid.reference import load_reference
from services.telemetry.metrics import count_case_opened, initialise_case_labels

SCENARIOS = load_reference().scenarios


def opened(scenario: str, department: str) -> float | None:
    labels = {"scenario": scenario, "department": department}
    return REGISTRY.get_sample_value("airgrid_cases_opened_total", labels)


def test_every_owner_of_every_scenario_has_a_series_and_no_one_else() -> None:
    initialise_case_labels(SCENARIOS)
    waterlogging = next(s for s in SCENARIOS if s.code == "waterlogging")
    assert set(waterlogging.departments) == {"water", "urban", "emergency"}
    for scenario in SCENARIOS:
        for department in scenario.departments:
            assert opened(scenario.code, department) is not None, (scenario.code, department)
    assert opened("waterlogging", "fire") is None


def test_a_case_counts_once_for_each_owner_and_never_for_an_unknown_department() -> None:
    before = {code: opened("waterlogging", code) or 0.0 for code in ("water", "urban", "parks")}
    count_case_opened("waterlogging", ("water", "urban", "water", "not-a-department"))
    after = {code: opened("waterlogging", code) or 0.0 for code in before}
    assert {code: after[code] - before[code] for code in before} == {
        "water": 1,
        "urban": 1,
        "parks": 0,
    }
    assert opened("waterlogging", "not-a-department") is None
