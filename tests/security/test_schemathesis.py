"""Schemathesis 4 against each service's own OpenAPI document: all checks, all phases.

The documents are the contract. Each service runs in process over ASGI (schemathesis runs its
lifespan), on the real PostgreSQL and broker. The examples, coverage and fuzzing phases send
valid and invalid requests to every operation, at least EXAMPLES_PER_OPERATION generated per
operation; the stateful phase follows the links of the documents (POST /v1/nests, then GET,
PATCH and DELETE of the nest it created...). Every check of schemathesis runs on every answer:
no 5xx, documented status codes, content types and headers, answers matching their schema,
valid data accepted and invalid data refused, `Allow` on 405, auth not ignored, and a deleted
resource no longer served.

The run is random; its seed is printed at the end of the session and
AIRGRID_SCHEMATHESIS_SEED=<seed> reproduces it.
"""

from __future__ import annotations

import asyncio
import os
import random
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
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import BaseSchema

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
