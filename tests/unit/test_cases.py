"""Cases: the merge rule, the status machine, escalation once per case, and precision."""

from __future__ import annotations

from collections import Counter
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.geo import destination_point, haversine_m
from airgrid.reference import ScenarioSpec, load_reference
from services.telemetry.domain.cases import (
    Action,
    Case,
    CaseIndex,
    CaseStatus,
    Outcome,
    Sighting,
    case_id_for,
    escalation_for,
    open_case,
    precision_by_scenario,
    transition,
)

REFERENCE = load_reference()
SCENARIOS = {s.code: s for s in REFERENCE.scenarios}
ESCALATING = [s for s in REFERENCE.scenarios if s.escalation is not None]
CENTRE = REFERENCE.zone.centre
T0 = 1_800_000_000_000


def _sighting(
    n: int,
    scenario: ScenarioSpec,
    bearing: float = 0.0,
    distance_m: float = 0.0,
    offset_s: float = 0.0,
    confidence: float = 0.5,
) -> Sighting:
    lon, lat = destination_point(*CENTRE, bearing, distance_m)
    return Sighting(
        detection_id=f"det-{n:04d}",
        scenario=scenario.code,
        confidence=confidence,
        lon=lon,
        lat=lat,
        observed_ms=T0 + int(offset_s * 1000),
        media_uri=f"s3://media/{n}.jpg",
        media_sha256=f"{n:064x}",
    )


@st.composite
def clusters(draw: st.DrawFn) -> tuple[ScenarioSpec, list[Sighting]]:
    """Sightings of one scenario within a disc of the merge radius's diameter and within one
    merge window of each other."""
    scenario = draw(st.sampled_from(REFERENCE.scenarios))
    size = draw(st.integers(min_value=1, max_value=8))
    sightings = [
        _sighting(
            n,
            scenario,
            draw(st.floats(min_value=0, max_value=360)),
            draw(st.floats(min_value=0, max_value=scenario.merge_radius_m * 0.49)),
            draw(st.floats(min_value=0, max_value=scenario.merge_window_s)),
            draw(st.sampled_from([0.3, 0.5, 0.7, 0.9])),
        )
        for n in range(size)
    ]
    return scenario, sightings


@settings(max_examples=100)
@given(clusters(), st.randoms(use_true_random=False))
def test_a_tight_cluster_is_one_case_in_any_order(
    cluster: tuple[ScenarioSpec, list[Sighting]], random: Random
) -> None:
    _, sightings = cluster
    shuffled = list(sightings)
    random.shuffle(shuffled)
    results = []
    for order in (sightings, shuffled):
        index = CaseIndex(dict(SCENARIOS))
        for s in order:
            index.add(s)
        assert len(index.cases) == 1
        (case,) = index.held()
        results.append(case)
    a, b = results
    assert a.count == b.count == len(sightings)
    assert (a.first_seen_ms, a.last_seen_ms) == (b.first_seen_ms, b.last_seen_ms)
    assert (a.best_detection_id, a.best_media_uri) == (b.best_detection_id, b.best_media_uri)
    assert a.best_confidence == max(s.confidence for s in sightings)


sightings = st.builds(
    lambda n, code, bearing, distance, offset, confidence: _sighting(
        n, SCENARIOS[code], bearing, distance, offset, confidence
    ),
    st.integers(min_value=0, max_value=60),
    st.sampled_from(["smoke", "open_flame", "illegal_parking"]),
    st.floats(min_value=0, max_value=360),
    st.floats(min_value=0, max_value=3_000),
    st.floats(min_value=0, max_value=7_200),
    st.floats(min_value=0, max_value=1),
)


@settings(max_examples=100)
@given(st.lists(sightings, max_size=40))
def test_no_detection_is_in_two_cases_and_every_member_obeys_the_rule(
    batch: list[Sighting],
) -> None:
    index = CaseIndex(dict(SCENARIOS))
    members: dict[str, list[Sighting]] = {}
    added: set[str] = set()
    for s in batch:
        result = index.add(s)
        if s.detection_id in added:
            assert result is None  # a repeat joins nothing
            continue
        added.add(s.detection_id)
        assert result is not None
        members.setdefault(result.case.id, []).append(s)
        if result.opened:
            assert result.case.id == case_id_for(s.detection_id)
    assert set(index.members) == added
    assert Counter(index.members.values()) == {k: len(v) for k, v in members.items()}
    for case in index.held():
        scenario = SCENARIOS[case.scenario]
        assert case.count == len(members[case.id])
        for s in members[case.id]:
            assert s.scenario == case.scenario
            assert haversine_m(case.lon, case.lat, s.lon, s.lat) <= scenario.merge_radius_m
            assert case.first_seen_ms <= s.observed_ms <= case.last_seen_ms


def test_another_scenario_far_place_or_late_time_opens_a_new_case() -> None:
    smoke = SCENARIOS["smoke"]
    index = CaseIndex(dict(SCENARIOS))
    first = index.add(_sighting(1, smoke))
    assert first is not None and first.opened
    other = index.add(_sighting(2, SCENARIOS["open_flame"]))
    near = index.add(_sighting(5, smoke, 270, smoke.merge_radius_m - 1, smoke.merge_window_s))
    far = index.add(_sighting(3, smoke, 90, smoke.merge_radius_m + 1))
    late = index.add(_sighting(4, smoke, offset_s=2 * smoke.merge_window_s + 1))
    assert other is not None and other.opened
    assert near is not None and not near.opened and near.case.id == first.case.id
    assert far is not None and far.opened
    assert late is not None and late.opened


def test_a_closed_case_takes_no_more_detections() -> None:
    smoke = SCENARIOS["smoke"]
    index = CaseIndex(dict(SCENARIOS))
    opened = index.add(_sighting(1, smoke))
    assert opened is not None
    assert index.apply(opened.case.id, Action.RESOLVE).outcome is Outcome.APPLIED
    again = index.add(_sighting(2, smoke, offset_s=10))
    assert again is not None and again.opened and again.case.id != opened.case.id


def test_a_newer_stored_version_replaces_the_held_case() -> None:
    smoke = SCENARIOS["smoke"]
    index = CaseIndex(dict(SCENARIOS))
    opened = index.add(_sighting(1, smoke))
    assert opened is not None
    acknowledged = transition(opened.case, Action.ACKNOWLEDGE).case
    index.update(opened.case)  # not newer: nothing changes
    assert index.cases[opened.case.id] == opened.case
    index.update(acknowledged)
    joined = index.add(_sighting(2, smoke, offset_s=10))
    assert joined is not None and not joined.opened
    assert joined.case.status is CaseStatus.ACKNOWLEDGED and joined.case.version == 3
    index.update(transition(joined.case, Action.DISMISS).case)  # closed elsewhere: let go
    assert opened.case.id not in index.cases and "det-0001" not in index.members


def test_expiry_keeps_the_index_bounded() -> None:
    smoke = SCENARIOS["smoke"]
    index = CaseIndex(dict(SCENARIOS))
    for n in range(50):
        index.add(_sighting(n, smoke, offset_s=n * (smoke.merge_window_s + 1)))
    assert len(index.cases) == 50
    last_seen = T0 + 49 * (smoke.merge_window_s + 1) * 1000
    gone = index.expire(last_seen + 1)
    assert len(gone) == 49 and len(index.cases) == 1 and len(index.members) == 1


def test_a_case_of_a_scenario_removed_from_the_catalogue_expires() -> None:
    smoke = SCENARIOS["smoke"]
    index = CaseIndex(dict(SCENARIOS))
    index.add(_sighting(1, smoke))
    del index.scenarios["smoke"]  # an admin removed it while the case was open
    assert len(index.expire(T0)) == 1 and index.cases == {} and index.members == {}


STATUSES = list(CaseStatus)
ACTIONS = list(Action)
ALLOWED = {
    (CaseStatus.OPEN, Action.ACKNOWLEDGE): CaseStatus.ACKNOWLEDGED,
    (CaseStatus.OPEN, Action.DISMISS): CaseStatus.DISMISSED,
    (CaseStatus.OPEN, Action.RESOLVE): CaseStatus.RESOLVED,
    (CaseStatus.OPEN, Action.ESCALATE): CaseStatus.ESCALATED,
    (CaseStatus.ACKNOWLEDGED, Action.DISMISS): CaseStatus.DISMISSED,
    (CaseStatus.ACKNOWLEDGED, Action.RESOLVE): CaseStatus.RESOLVED,
    (CaseStatus.ACKNOWLEDGED, Action.ESCALATE): CaseStatus.ESCALATED,
    (CaseStatus.ESCALATED, Action.RESOLVE): CaseStatus.RESOLVED,
}
REPEATS = {
    (CaseStatus.ACKNOWLEDGED, Action.ACKNOWLEDGE),
    (CaseStatus.DISMISSED, Action.DISMISS),
    (CaseStatus.RESOLVED, Action.RESOLVE),
    (CaseStatus.ESCALATED, Action.ESCALATE),
}


def _case(status: CaseStatus) -> Case:
    case = open_case(_sighting(1, SCENARIOS["smoke"]), SCENARIOS["smoke"])
    incident = "inc-1" if status is CaseStatus.ESCALATED else ""
    return Case(**{**case.__dict__, "status": status, "incident_id": incident})


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_the_transition_table(status: CaseStatus, action: Action) -> None:
    case = _case(status)
    result = transition(case, action, incident_id="inc-1")
    if (status, action) in ALLOWED:
        assert result.outcome is Outcome.APPLIED
        assert result.case.status is ALLOWED[(status, action)]
        assert result.case.version == case.version + 1
        repeat = transition(result.case, action, incident_id="inc-1")
        assert repeat.outcome is Outcome.UNCHANGED and repeat.case == result.case
    elif (status, action) in REPEATS:
        assert result.outcome is Outcome.UNCHANGED and result.case == case
    else:
        assert result.outcome is Outcome.NOT_ALLOWED and result.case == case
        assert result.detail


@given(st.lists(st.sampled_from(ACTIONS), max_size=12))
def test_any_action_sequence_is_idempotent_and_closed_cases_stay_closed(
    actions: list[Action],
) -> None:
    case = _case(CaseStatus.OPEN)
    for action in actions:
        result = transition(case, action, incident_id="inc-1")
        again = transition(result.case, action, incident_id="inc-1")
        if result.outcome is not Outcome.NOT_ALLOWED:
            assert again.outcome is Outcome.UNCHANGED and again.case == result.case
        if case.status in (CaseStatus.RESOLVED, CaseStatus.DISMISSED):
            assert result.case.status is case.status
        case = result.case


def test_an_escalated_case_keeps_its_incident() -> None:
    case = transition(_case(CaseStatus.OPEN), Action.ESCALATE, incident_id="inc-1").case
    assert transition(case, Action.ESCALATE, incident_id="inc-2").outcome is Outcome.NOT_ALLOWED
    assert transition(case, Action.ESCALATE).outcome is Outcome.NOT_ALLOWED
    assert case.incident_id == "inc-1"


@settings(max_examples=100)
@given(
    st.sampled_from(ESCALATING),
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1),
            st.floats(min_value=0, max_value=600),
            st.sampled_from([None, Action.ACKNOWLEDGE, Action.DISMISS, Action.RESOLVE]),
        ),
        max_size=25,
    ),
)
def test_a_case_escalates_at_most_once(
    scenario: ScenarioSpec, steps: list[tuple[float, float, Action | None]]
) -> None:
    assert scenario.escalation is not None
    index = CaseIndex(dict(SCENARIOS))
    incidents: dict[str, str] = {}  # dispatch's idempotency: key -> incident id
    escalations: Counter[str] = Counter()
    for n, (confidence, offset_s, action) in enumerate(steps):
        result = index.add(_sighting(n, scenario, 0, 10, offset_s, confidence))
        assert result is not None
        case = result.case
        if action is not None:
            case = index.apply(case.id, action).case
        request = escalation_for(case, scenario)
        if request is None:
            continue
        assert request.idempotency_key == case.id == request.case_id
        assert case.best_confidence >= scenario.escalation.min_confidence
        incident = incidents.setdefault(request.idempotency_key, f"inc-{len(incidents)}")
        if index.apply(case.id, Action.ESCALATE, incident_id=incident).outcome is Outcome.APPLIED:
            escalations[case.id] += 1
        assert escalation_for(index.cases[case.id], scenario) is None
    assert all(count == 1 for count in escalations.values())


def test_below_the_threshold_or_without_a_rule_nothing_escalates() -> None:
    scenario = ESCALATING[0]
    assert scenario.escalation is not None
    low = open_case(
        _sighting(1, scenario, confidence=scenario.escalation.min_confidence - 0.01), scenario
    )
    assert escalation_for(low, scenario) is None
    plain = next(s for s in REFERENCE.scenarios if s.escalation is None)
    assert escalation_for(open_case(_sighting(2, plain, confidence=1.0), plain), plain) is None


def test_precision_is_one_minus_the_dismissed_share() -> None:
    smoke = SCENARIOS["smoke"]
    cases = [open_case(_sighting(n, smoke), smoke) for n in range(4)]
    cases[0] = transition(cases[0], Action.DISMISS).case
    flame = open_case(_sighting(9, SCENARIOS["open_flame"]), SCENARIOS["open_flame"])
    figures = precision_by_scenario([*cases, flame])
    assert figures["smoke"].dismissed_share == 0.25
    assert figures["smoke"].precision == 0.75
    assert figures["open_flame"].precision == 1.0
    assert precision_by_scenario([]) == {}
