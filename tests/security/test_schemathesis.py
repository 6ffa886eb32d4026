"""Schemathesis 4 against each service's own OpenAPI document: all checks, all phases.

The documents are the contract. Each service runs in process over ASGI (schemathesis runs its
lifespan), on the real PostgreSQL and broker. The examples, coverage and fuzzing phases send
valid and invalid requests to every operation, at least EXAMPLES_PER_OPERATION generated per
operation; the stateful phase follows the links of the documents (POST /v1/nests, then GET,
PATCH and DELETE of the nest it created...). Every check of schemathesis runs on every answer:
no 5xx, documented status codes, content types and headers, answers matching their schema,
valid data accepted and invalid data refused, `Allow` on 405, auth not ignored, and a deleted
resource no longer served.

Then every string of INJECTIONS (SQL, shell, template, script, path traversal, NUL, RTL
overrides, zalgo, emoji, CJK, 10,000 characters, CRLF, lone surrogates as JSON escapes) goes
into every path, query and JSON body text field of every operation, one field at a time in a
valid case drawn with the seed: never a 5xx, a documented status, content type, headers and
schema, and a problem+json body on every 4xx.

The run is random; its seed is printed at the end of the session and
AIRGRID_SCHEMATHESIS_SEED=<seed> reproduces it.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from airgrid.config import Settings
from tests.security.conftest import SERVICES, build, issue_keys, report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SEED = int(os.environ.get("AIRGRID_SCHEMATHESIS_SEED") or random.randrange(2**32))
EXAMPLES_PER_OPERATION = 25
STATEFUL_SCENARIOS = 25
STATEFUL_MAX_STEPS = 6
STATEFUL_SUITES = 10
# Server-Sent Events never end while the caller is allowed; their access is in the role matrix.
STREAMING_PATHS = r"/stream$"


@dataclass
class Figures:
    """What one service's run sent and found."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    failures: int = 0


FIGURES: dict[str, Figures] = defaultdict(Figures)


@dataclass
class LiveServices:
    settings: Settings
    apps: dict[str, FastAPI]
    keys: dict[str, str]

    def auth(self, method: str, path: str) -> dict[str, str]:
        """The credential of a role allowed to call the operation, so cases reach its logic:
        registry writes as admin, incidents as a department, telemetry ingest as admin (a
        gateway may report only its nest's drones), every read as the operator."""
        caller = "operator"
        if method != "GET":
            caller = "fire" if path.startswith("/v1/incidents") else "admin"
        return {"Authorization": f"Bearer {self.keys[caller]}"}


@pytest.fixture(scope="module")
def live(security_settings: Settings) -> Iterator[LiveServices]:
    from airgrid.reference import load_reference

    s = security_settings.model_copy(update={"topic_prefix": f"st{uuid.uuid4().hex[:8]}."})
    nest_id = load_reference(s.reference_data).nests[0].id
    keys = asyncio.run(issue_keys(s, nest_id))
    yield LiveServices(s, {name: build(name, s) for name in SERVICES}, keys)
    # Schemathesis started each app's lifespan on its own loop; end them before the database
    # of the security suite is dropped.
    shutdown_lifespans()


# Checks that cannot apply to one operation, and why. Each is turned off for that operation
# only; every other check still runs on it.
NOT_APPLICABLE: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/readyz"): {
        "not_a_server_error": "503 is the documented answer while a dependency is unreachable",
    },
}
# positive_data_acceptance assumes that what the schema allows, the API accepts. These
# operations also hold a rule that JSON Schema cannot state, so a schema-valid request may
# rightly get 422 with the rule in its detail.
BEYOND_THE_SCHEMA = {
    ("POST", "/v1/departments"): "feed_preferences.area: rings closed and not self-crossing",
    ("PATCH", "/v1/departments/{code}"): "feed_preferences.area: rings closed, not self-crossing",
    ("POST", "/v1/nests"): "location inside the zone's boundary polygon",
    ("PATCH", "/v1/nests/{nest_id}"): "location inside the zone's boundary polygon",
    ("POST", "/v1/drones"): "home_nest registered, with a free slot; max speed >= cruise speed",
    ("PATCH", "/v1/drones/{drone_id}"): "home_nest registered; max speed >= cruise speed",
    ("POST", "/v1/geofences"): "rings closed and not self-crossing; active_until > active_from",
    ("PATCH", "/v1/geofences/{geofence_id}"): "rings closed, not self-crossing; window ordered",
    ("POST", "/v1/credentials"): "department or nest_id names an existing one; expiry ahead",
    ("POST", "/v1/incidents"): "type in the catalogue; location in the zone, outside no-fly "
    "zones; some drones carry the capabilities",
    ("GET", "/v1/drones/{drone_id}/track"): "until later than since: two parameters' relation",
    **{
        (method, path): "department exists; geometry simple, closed and in the zone; width_m "
        "only with a corridor; a window's start differs from its end"
        for method, path in (
            ("POST", "/v1/inspection-plans"),
            ("PATCH", "/v1/inspection-plans/{plan_id}"),
            ("POST", "/v1/inspection-plans"),
            ("PATCH", "/v1/inspection-plans/{plan_id}"),
        )
    },
    ("POST", "/v1/inspection/scenarios"): "owner departments exist; escalation.incident_type "
    "is in the incident catalogue",
    ("PATCH", "/v1/inspection/scenarios/{code}"): "owner departments exist; "
    "escalation.incident_type is in the incident catalogue",
}
for _operation in BEYOND_THE_SCHEMA:
    NOT_APPLICABLE.setdefault(_operation, {})["positive_data_acceptance"] = BEYOND_THE_SCHEMA[
        _operation
    ]
# A rejection of invalid data: 413 is the body limit refusing a batch beyond maxItems before
# reading it whole.
REJECTION_STATUSES = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]


def config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "mode": "all"},
            "checks": {
                "enabled": True,
                "negative_data_rejection": {"expected-statuses": REJECTION_STATUSES},
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_MAX_STEPS},
            },
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {check: {"enabled": False} for check in checks},
                }
                for (method, path), checks in NOT_APPLICABLE.items()
            ],
        }
    )


def load(service: str, live: LiveServices) -> BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", live.apps[service], config=config())
    return schema.exclude(path_regex=STREAMING_PATHS)


@pytest.fixture(scope="module", params=SERVICES)
def service_schema(request: pytest.FixtureRequest, live: LiveServices) -> BaseSchema:
    return load(request.param, live)


def service_of(case: schemathesis.Case[Any]) -> str:
    return str(case.operation.schema.raw_schema["info"]["title"]).split()[1]


lazy = schemathesis.pytest.from_fixture("service_schema")


@lazy.parametrize()
@hypothesis.settings(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    max_examples=EXAMPLES_PER_OPERATION,
)
def test_every_answer_matches_the_document(
    case: schemathesis.Case[Any], live: LiveServices
) -> None:
    figures = FIGURES[service_of(case)]
    figures.operations.add(case.operation.label)
    figures.cases += 1
    try:
        case.call_and_validate(headers=live.auth(case.method.upper(), case.path))
    except BaseException:
        figures.failures += 1
        raise


def test_stateful_sequences_over_the_links(service_schema: BaseSchema, live: LiveServices) -> None:
    machine = service_schema.as_state_machine()
    scenarios = 0

    class Machine(machine):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": live.auth(case.method.upper(), case.path)}

        def validate_response(
            self, response: schemathesis.Response, case: schemathesis.Case[Any], **kwargs: Any
        ) -> None:
            figures = FIGURES[service_of(case)]
            figures.cases += 1
            try:
                super().validate_response(response, case, **kwargs)
            except BaseException:
                figures.failures += 1
                raise

        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

    # The live services are the state: the links offered depend on what earlier scenarios
    # created, so hypothesis may find a replayed prefix drawing otherwise and stop a suite
    # (FlakyStrategyDefinition). Such a suite is resumed with the next seed until enough
    # scenarios ran; a failed check is never swallowed (it is a FailureGroup, or inside a
    # FlakyFailure, both raised).
    for suite in range(STATEFUL_SUITES):
        try:
            hypothesis.seed(SEED + suite)(Machine).run(
                settings=hypothesis.settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    stateful_step_count=STATEFUL_MAX_STEPS,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                )
            )
            break
        except FlakyStrategyDefinition:
            if scenarios >= STATEFUL_SCENARIOS:
                break
    assert scenarios >= STATEFUL_SCENARIOS, f"only {scenarios} stateful scenarios ran"


@pytest.fixture(scope="module", autouse=True)
def print_figures() -> Iterator[None]:
    yield
    report(f"schemathesis seed {SEED} (AIRGRID_SCHEMATHESIS_SEED={SEED} reproduces the run)")
    for service in SERVICES:
        f = FIGURES[service]
        report(
            f"schemathesis {service}: {len(f.operations)} operations, {f.cases} cases, "
            f"{f.failures} failed"
        )


# -- injection and odd unicode ------------------------------------------------------------

# Each string goes into every path, query and body text field of every operation. Lone
# surrogates travel in JSON bodies as \ud800-style escapes (the client's JSON encoder escapes
# them); a URL cannot carry them, so path and query fields skip those.
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE incidents; --",
    "1; SELECT pg_sleep(10)--",
    "$(rm -rf /)",
    "`reboot`; ls | cat /etc/passwd &",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "\x00",
    "nul\x00byte",
    "%00%27%22",
    "\u202etxt.exe",
    "\u200f\u202b\u2066rtl",
    "Z\u0351\u0360\u0361a\u035b\u0362l\u0363g\u0364o",
    "👩\u200d👩\u200d👧\u200d👦🚁🔥",
    "火灾 消防救援",
    "\ufeff\ufffe\uffff",
    "a" * 10_000,
    " ",
    "",
    "null",
    "-1",
    "9" * 40,
    '{"$gt": ""}',
    "\\",
    "\r\nX-Injected: 1",
    "\ud800",
    "x\udfffy",
]
_SURROGATES = re.compile("[\ud800-\udfff]")
INJECTION_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

FieldPath = tuple[str | int, ...]


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is_text(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    schema = _resolve(schema, document)
    if schema.get("type") == "string":
        return True
    return any(_is_text(s, document) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _text_paths(
    schema: dict[str, Any], document: dict[str, Any], at: FieldPath = (), depth: int = 0
) -> list[FieldPath]:
    """Where a JSON body holds text: object properties at any depth, the first item of an
    array, through anyOf/oneOf/allOf."""
    schema = _resolve(schema, document)
    if depth > 6:
        return []
    if _is_text(schema, document):
        return [at]
    found: list[FieldPath] = []
    for sub in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found += _text_paths(sub, document, at, depth + 1)
    for name, prop in schema.get("properties", {}).items():
        found += _text_paths(prop, document, (*at, name), depth + 1)
    if "items" in schema and isinstance(schema["items"], dict):
        found += _text_paths(schema["items"], document, (*at, 0), depth + 1)
    return sorted(set(found), key=str)


def _with_text(body: Any, path: FieldPath, text: str) -> Any:
    """A copy of body with text at path; missing objects and arrays on the way are made."""
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) else []
        first = items[0] if items else {}
        return [_with_text(first, rest, text), *items[1:]]
    fields = dict(body) if isinstance(body, dict) else {}
    fields[head] = _with_text(fields.get(head), rest, text)
    return fields


def text_fields(case: schemathesis.Case[Any]) -> list[tuple[str, FieldPath]]:
    """(location, path) of every path, query and JSON body text field of the operation."""
    document = case.operation.schema.raw_schema
    definition = case.operation.definition.raw
    found: list[tuple[str, FieldPath]] = []
    for parameter in definition.get("parameters", []):
        parameter = _resolve(parameter, document)
        if parameter["in"] in ("path", "query") and _is_text(parameter.get("schema", {}), document):
            found.append((parameter["in"], (parameter["name"],)))
    content = _resolve(definition.get("requestBody", {}), document).get("content", {})
    body_schema = content.get("application/json", {}).get("schema")
    if body_schema is not None:
        found += [("body", path) for path in _text_paths(body_schema, document)]
    return found


def base_case(operation: Any) -> schemathesis.Case[Any]:
    """One valid case of the operation, drawn with the run's seed: the others stay valid
    while one field at a time carries an injection."""
    drawn: list[schemathesis.Case[Any]] = []

    @hypothesis.given(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @hypothesis.settings(
        max_examples=1,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(SEED)
    def draw(case: schemathesis.Case[Any]) -> None:
        drawn.append(case)

    draw()
    return drawn[0]


def injected(
    base: schemathesis.Case[Any], location: str, path: FieldPath, text: str
) -> schemathesis.Case[Any] | None:
    """The base case with text in one field; None when the location cannot carry it."""
    if location in ("path", "query") and _SURROGATES.search(text):
        return None
    if location == "path" and not text:
        return None  # an empty segment is another URL, not a parameter value
    name = str(path[0])
    path_parameters = dict(base.path_parameters or {})
    query = dict(base.query or {})
    body, media_type = base.body, base.media_type
    if location == "path":
        path_parameters[name] = text
    elif location == "query":
        query[name] = text
    else:
        body = _with_text(None if isinstance(body, NotSet) else body, path, text)
        media_type = "application/json"
    case: schemathesis.Case[Any] = base.operation.Case(
        method=base.method,
        path_parameters=path_parameters,
        headers=dict(base.headers or {}),
        query=query,
        body=body,
        media_type=media_type,
    )
    return case


def problem_failure(response: schemathesis.Response) -> str | None:
    """A 4xx must carry an RFC 9457 problem body."""
    if not 400 <= response.status_code < 500:
        return None
    found = response.headers.get("content-type") or [""]
    kind = found[0] if isinstance(found, list) else str(found)
    if not kind.startswith("application/problem+json"):
        return f"{response.status_code} with content-type {kind!r}, not a problem"
    body = response.json()
    if not isinstance(body, dict) or body.get("status") != response.status_code:
        return f"{response.status_code} problem without a matching status: {response.text[:200]}"
    return None


def test_injection_and_odd_unicode_in_every_text_field(
    service_schema: BaseSchema, live: LiveServices
) -> None:
    """Every string of INJECTIONS in every path, query and body text field of every
    operation: a documented answer, never a 5xx, a problem body on a 4xx, and the answer
    conformant to the document."""
    failures: list[str] = []
    sent = 0
    service = ""
    for result in service_schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        base = base_case(operation)
        service = service_of(base)
        fields = text_fields(base)
        for location, path in fields:
            for text in INJECTIONS:
                case = injected(base, location, path, text)
                if case is None:
                    continue
                sent += 1
                where = f"{operation.label} [{location} {'.'.join(map(str, path))}={text[:30]!r}]"
                try:
                    response = case.call_and_validate(
                        headers=live.auth(case.method.upper(), case.path), checks=INJECTION_CHECKS
                    )
                except AssertionError as failure:
                    failures.append(f"{where}: {str(failure)[:600]}")
                    continue
                problem = problem_failure(response)
                if problem is not None:
                    failures.append(f"{where}: {problem}")
    report(f"injection {service}: {sent} cases, {len(failures)} failed")
    assert sent > 0
    assert not failures, f"{len(failures)} of {sent} cases failed:\n\n" + "\n\n".join(failures[:15])
