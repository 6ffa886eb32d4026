"""Schemathesis against each service's own OpenAPI, in-process over ASGI, real database and broker.

Cases are generated from the document (valid and invalid data, bounded per operation), sent with
a credential of a role allowed to call the operation, and every answer must be documented, of a
documented content type, match its schema, and never be a 5xx. A second pass puts injection and
odd-unicode strings into every text field (path, query and top-level body strings).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import DataGenerationMethod
from schemathesis.checks import (  # type: ignore[attr-defined]
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.models import Case
from schemathesis.types import NotSet

from tests.security.conftest import SERVICES, Services

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 4
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
# Server-Sent Events never end while the caller is allowed; their access is in the role matrix.
STREAMING_SUFFIX = "/stream"

# Who calls each operation: a role allowed to, so the cases reach the handler's logic.
CALLER_FOR = {
    ("registry", "POST"): "admin",
    ("telemetry", "POST"): "admin",
    ("dispatch", "POST"): "fire",
}

NASTY_STRINGS = [
    "' OR '1'='1",
    "'; DROP TABLE incidents; --",
    '" OR ""="',
    "1; SELECT pg_sleep(0)--",
    "{{7*7}}${7*7}<%= 7*7 %>",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "%00%27%22",
    "\x00",
    "\u0000nul",
    "\ud7ff\ue000\uffff",
    "\u202etxt.exe",
    "Z\u0351\u0360\u0361a\u035b\u0362l\u0363g\u0364o",
    "👩‍👩‍👧‍👦🚁🔥",
    "火灾 消防救援",
    "ﷺ" * 50,
    "a" * 5000,
    " ",
    "",
    "null",
    "NaN",
    "-1",
    "9" * 40,
    "$where: 1",
    '{"$gt": ""}',
    "\\",
    "\r\nX-Injected: 1",
]


def caller_for(service: str, method: str) -> str:
    return CALLER_FOR.get((service, method), "operator")


def collect_cases(operation: Any, method: DataGenerationMethod, count: int) -> list[Case]:
    """Draw `count` cases from the operation's strategy, reproducibly."""
    cases: list[Case] = []

    @given(case=operation.as_strategy(data_generation_method=method))
    @hypothesis_settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def draw(case: Case) -> None:
        cases.append(case)

    try:
        draw()
    except Unsatisfiable:
        pass  # e.g. no invalid request exists for an operation without parameters
    except Exception as error:
        if method is not DataGenerationMethod.negative:
            raise
        # schemathesis 3.x cannot mutate some 3.1 keywords (exclusiveMinimum as a number);
        # the valid cases and the injection pass still cover the operation.
        print(f"negative generation stopped for {operation.verbose_name}: {error!r:.120}")
    return cases


def as_requests_response(response: httpx.Response, request: httpx.Request) -> requests.Response:
    """The shape schemathesis checks; the ASGI call itself went through httpx."""
    converted = requests.Response()
    converted.status_code = response.status_code
    converted._content = response.content
    converted.headers.update(response.headers)
    converted.url = str(request.url)
    converted.encoding = response.encoding
    prepared = requests.Request(
        request.method, str(request.url), headers=dict(request.headers)
    ).prepare()
    prepared.body = request.content
    converted.request = prepared
    return converted


def quoted_path(case: Case) -> str:
    """The path with each parameter percent-encoded, as any real client sends it."""
    path = case.operation.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return path


def is_header_value(value: Any) -> bool:
    """Only what HTTP/1.1 can carry in a header (clients refuse the rest before sending)."""
    return (
        isinstance(value, str)
        and value.isascii()
        and value == value.strip()
        and not any(c in value for c in "\r\n\x00")
    )


async def send(client: httpx.AsyncClient, case: Case, auth: dict[str, str]) -> httpx.Response:
    headers = {
        k: v
        for k, v in (case.headers or {}).items()
        if k.lower() != "authorization" and is_header_value(v)
    }
    headers.update(auth)
    kwargs: dict[str, Any] = {"params": case.query, "headers": headers, "cookies": case.cookies}
    body = case.body
    media = case.media_type or "application/json"
    if not isinstance(body, NotSet):
        if media.endswith("json"):
            kwargs["content"] = json.dumps(body).encode()
        elif isinstance(body, bytes):
            kwargs["content"] = body
        else:
            kwargs["content"] = str(body).encode()
        headers["Content-Type"] = media
    if case.method.upper() == "POST" and case.path == "/v1/incidents":
        headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
    return await client.request(case.method, quoted_path(case), **kwargs)


async def check_case(services: Services, service: str, case: Case) -> str | None:
    """None when the answer passes every check, else a description of the failure."""
    auth = services.auth(caller_for(service, case.method.upper()))
    try:
        response = await asyncio.wait_for(send(services.clients[service], case, auth), 30)
    except TimeoutError:
        return (
            f"{service} {case.method} {quoted_path(case)} query={case.query!r}: no answer in 30 s"
        )
    try:
        case.validate_response(as_requests_response(response, response.request), checks=CHECKS)
    except AssertionError as failure:
        return (
            f"{service} {case.method} {quoted_path(case)} query={case.query!r} "
            f"-> {response.status_code} {response.text[:300]}\n{str(failure)[:800]}"
        )
    return None


def generation_methods(operation: Any) -> list[DataGenerationMethod]:
    """Invalid data only where there is a body or a query to break: searching for an invalid
    path-only request is slow and finds nothing (any string is a valid path segment)."""
    raw = operation.definition.raw
    breakable = "requestBody" in raw or any(
        p.get("in") == "query" for p in raw.get("parameters", [])
    )
    methods = [DataGenerationMethod.positive]
    return [*methods, DataGenerationMethod.negative] if breakable else methods


def operations(services: Services, service: str) -> list[Any]:
    schema = schemathesis.from_dict(services.apps[service].openapi(), force_schema_version="30")
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.path.startswith("/v1/") and not operation.path.endswith(STREAMING_SUFFIX):
            found.append(operation)
    return found


@pytest.mark.parametrize("service", SERVICES)
async def test_generated_requests_get_documented_answers_and_no_5xx(
    services: Services, service: str
) -> None:
    failures: list[str] = []
    sent = 0
    for operation in operations(services, service):
        for method in generation_methods(operation):
            for case in collect_cases(operation, method, EXAMPLES_PER_OPERATION):
                sent += 1
                failure = await check_case(services, service, case)
                if failure:
                    failures.append(failure)
    print(f"{service}: {sent} cases, {len(failures)} failed")
    assert sent > 0
    assert not failures, f"{len(failures)} of {sent} cases failed:\n\n" + "\n\n".join(failures[:10])


def _string_fields(operation: Any) -> list[tuple[str, str]]:
    """(location, name) of every string parameter and top-level string body property."""
    fields: list[tuple[str, str]] = []
    for parameter in operation.definition.raw.get("parameters", []):
        schema = parameter.get("schema", {})
        kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
        if "string" in kinds or not any(kinds):
            fields.append((parameter["in"], parameter["name"]))
    body = operation.definition.resolved.get("requestBody", {})
    json_schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    for name, prop in json_schema.get("properties", {}).items():
        kinds = [prop.get("type")] + [s.get("type") for s in prop.get("anyOf", [])]
        if "string" in kinds:
            fields.append(("body", name))
    return fields


@pytest.mark.parametrize("service", SERVICES)
async def test_injection_and_odd_unicode_in_every_text_field(
    services: Services, service: str
) -> None:
    failures: list[str] = []
    sent = 0
    for operation in operations(services, service):
        fields = _string_fields(operation)
        if not fields:
            continue
        base = collect_cases(operation, DataGenerationMethod.positive, 1)[0]
        for index, (location, name) in enumerate(fields):
            # Each field gets a quarter of the strings, rotating, so every string reaches every
            # kind of field across the document while a run stays bounded.
            for nasty in NASTY_STRINGS[index % 4 :: 4]:
                case = base.partial_deepcopy()
                if location == "path" and not nasty:
                    continue  # an empty path segment is another URL, not a parameter value
                if location == "path":
                    case.path_parameters = {**(case.path_parameters or {}), name: nasty}
                elif location == "query":
                    case.query = {**(case.query or {}), name: nasty}
                elif location == "header":
                    if any(c in nasty for c in "\r\n\x00") or not nasty.isascii():
                        continue  # not representable in an HTTP header at all
                    case.headers = {**dict(case.headers or {}), name: nasty}  # type: ignore[assignment]
                elif location == "body" and isinstance(case.body, dict):
                    case.body = {**case.body, name: nasty}
                else:
                    continue
                sent += 1
                failure = await check_case(services, service, case)
                if failure:
                    failures.append(f"[{location} {name}={nasty[:40]!r}] {failure}")
    print(f"{service}: {sent} cases, {len(failures)} failed")
    assert sent > 0
    assert not failures, f"{len(failures)} of {sent} cases failed:\n\n" + "\n\n".join(failures[:10])
