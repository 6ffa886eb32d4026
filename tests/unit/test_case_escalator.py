"""The case escalator's pure parts: every post of one case is the same request under the
same key (so dispatch's idempotency replays it, never a 422 or a second incident), a body
dispatch's own request schema takes, the waits between tries, and the queue `consider` fills
without I/O; and, with a fake dispatch and store, what each answer leads to."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airgrid.config import Settings
from airgrid.problems import Problem
from airgrid.reference import ScenarioSpec, load_reference
from services.dispatch.schemas import IncidentCreate
from services.telemetry import case_escalator
from services.telemetry.case_escalator import CaseEscalator, incident_body, next_wait_s
from services.telemetry.domain.cases import Action, CaseIndex, CaseStatus, escalation_for
from tests.unit.test_cases import ESCALATING, SCENARIOS, _sighting

REFERENCE = load_reference()
CAPABILITIES = {t.code: t.required_capabilities for t in REFERENCE.incident_types}


@settings(max_examples=100)
@given(
    st.sampled_from(ESCALATING),
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1),
            st.floats(min_value=0, max_value=360),
            st.floats(min_value=0, max_value=90),
            st.floats(min_value=0, max_value=600),
            st.booleans(),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_every_post_of_a_case_is_the_same_request_under_the_same_key(
    scenario: ScenarioSpec, steps: list[tuple[float, float, float, float, bool]]
) -> None:
    """However many sightings join a case, and whether it was acknowledged in between, each
    time it asks for an incident the key and the body (as dispatch fingerprints it) are the
    same: so a retry, a restart or a second replica gets the first incident back."""
    index = CaseIndex(dict(SCENARIOS))
    asked: dict[str, set[tuple[str, bytes]]] = {}
    for n, (confidence, bearing, distance, offset_s, acknowledge) in enumerate(steps):
        result = index.add(_sighting(n, scenario, bearing, distance, offset_s, confidence))
        assert result is not None
        case = result.case
        if acknowledge:
            case = index.apply(case.id, Action.ACKNOWLEDGE).case
        request = escalation_for(case, scenario)
        if request is None:
            continue
        body = incident_body(request, case, scenario, CAPABILITIES[request.incident_type])
        fingerprint = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        asked.setdefault(case.id, set()).add((request.idempotency_key, fingerprint))
    for case_id, requests in asked.items():
        assert len(requests) == 1, requests
        ((key, _),) = requests
        assert key == case_id


def test_the_body_is_an_incident_dispatch_takes() -> None:
    scenario = next(s for s in ESCALATING if s.code == "open_flame")
    assert scenario.escalation is not None
    case = index_case(scenario, confidence=0.95)
    request = escalation_for(case, scenario)
    assert request is not None
    body = incident_body(request, case, scenario, CAPABILITIES[request.incident_type])
    shape = IncidentCreate.model_validate(body)  # dispatch's own request schema
    assert shape.type == "fire" and shape.priority == 1
    assert shape.location.type == "Point"
    assert shape.location.coordinates == [case.lon, case.lat]
    assert shape.required_capabilities == ["thermal"]
    assert shape.shared_with == sorted(scenario.departments)
    assert case.id in shape.description and scenario.code in shape.description


def index_case(scenario: ScenarioSpec, confidence: float) -> Any:
    index = CaseIndex(dict(SCENARIOS))
    result = index.add(_sighting(1, scenario, confidence=confidence))
    assert result is not None
    return result.case


def test_waits_double_to_the_cap_and_honour_retry_after() -> None:
    assert [next_wait_s(n, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert next_wait_s(1, 30, "5") == 5
    assert next_wait_s(1, 30, "600") == 30
    assert next_wait_s(3, 30, "soon") == 4


def escalator() -> CaseEscalator:
    """No engine, producer or view: `consider` must not touch them."""
    configured = Settings(dispatch_url="http://dispatch", dispatch_key="k")
    return CaseEscalator(
        settings=configured,
        engine=cast(Any, None),
        producer=cast(Any, None),
        registry=cast(Any, None),
        capabilities=CAPABILITIES,
        clock=lambda: 100.0,
    )


def test_consider_queues_once_and_only_what_the_rule_asks_for() -> None:
    scenario = next(s for s in ESCALATING if s.code == "open_flame")
    plain = next(s for s in REFERENCE.scenarios if s.escalation is None)
    queue = escalator()
    low = index_case(scenario, confidence=0.5)
    queue.consider(low, scenario)
    queue.consider(index_case(plain, confidence=1.0), plain)
    assert queue.pending == {}

    high = index_case(scenario, confidence=0.95)
    queue.consider(high, scenario)
    queue.consider(replace(high, count=2, version=2), scenario)
    assert list(queue.pending) == [high.id] and queue.pending[high.id].due == 100.0
    assert queue.wake.is_set()

    closed = replace(index_case(scenario, confidence=0.9), id="case-x", status=CaseStatus.DISMISSED)
    queue.consider(closed, scenario)
    queue.settled[high.id] = None
    queue.pending.clear()
    queue.consider(high, scenario)  # settled in this process: a stale copy is not posted again
    assert queue.pending == {}


class FakeDispatch:
    """Answers POST /v1/incidents with the given statuses in turn; records each request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0)
        if status in (200, 201):
            return httpx.Response(status, json={"id": "inc-1"})
        return httpx.Response(status, json={"title": "no", "status": status})


async def attempts(
    monkeypatch: pytest.MonkeyPatch, dispatch: FakeDispatch, *, transition: Exception | None
) -> tuple[CaseEscalator, list[str]]:
    """An escalator with one open-flame case queued, tried once per dispatch answer."""
    escalated: list[str] = []

    async def nothing_stored(engine: object, case_ids: object) -> list[object]:
        return []

    async def take_action(**kwargs: Any) -> Any:
        if transition is not None:
            raise transition
        escalated.append(kwargs["incident_id"])
        return replace(queued, status=CaseStatus.ESCALATED, version=2)

    monkeypatch.setattr(case_escalator, "stored_cases", nothing_stored)
    monkeypatch.setattr(case_escalator, "take_action", take_action)
    scenario = next(s for s in ESCALATING if s.code == "open_flame")
    queued = index_case(scenario, confidence=0.95)
    queue = escalator()
    queue.consider(queued, scenario)
    async with httpx.AsyncClient(transport=httpx.MockTransport(dispatch)) as client:
        for _ in range(len(dispatch.statuses)):
            await queue._attempt(client, queue.pending[queued.id])
    return queue, escalated


async def test_down_then_up_is_retried_then_escalated_under_one_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatch = FakeDispatch(503, 429, 201)
    queue, escalated = await attempts(monkeypatch, dispatch, transition=None)
    assert escalated == ["inc-1"] and queue.pending == {}
    keys = {r.headers["Idempotency-Key"] for r in dispatch.requests}
    bodies = {r.content for r in dispatch.requests}
    assert len(keys) == 1 and len(bodies) == 1 and len(dispatch.requests) == 3


async def test_another_4xx_is_given_up_and_not_queued_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue, escalated = await attempts(monkeypatch, FakeDispatch(422), transition=None)
    assert escalated == [] and queue.pending == {} and len(queue.settled) == 1
    ((case_id, _),) = queue.settled.items()
    scenario = next(s for s in ESCALATING if s.code == "open_flame")
    queue.consider(replace(index_case(scenario, confidence=0.95), id=case_id), scenario)
    assert queue.pending == {}


async def test_a_case_closed_before_the_transition_is_superseded_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = Problem(409, "Transition not allowed", "dismissed", kind="transition-not-allowed")
    queue, _ = await attempts(monkeypatch, FakeDispatch(201), transition=closed)
    assert queue.pending == {} and len(queue.settled) == 1


async def test_an_unpublished_transition_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    unpublished = Problem(503, "Not published", "broker down", kind="not-published")
    dispatch = FakeDispatch(201)
    queue, _ = await attempts(monkeypatch, dispatch, transition=unpublished)
    (pending,) = queue.pending.values()
    assert pending.attempt == 1 and pending.due == 101.0
