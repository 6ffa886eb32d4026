"""asyncapi.yaml validates against the AsyncAPI 3.0 JSON Schema (vendored), every $ref in it
resolves, and it describes exactly the topics of the topic table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from airgrid.topics import ALL_TOPICS, DEPARTMENT_CODES, FEEDS
from deploy.generate import asyncapi_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "deploy/schemas/asyncapi-3.0.0.json").read_text())


def _document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def test_asyncapi_validates_against_the_asyncapi_3_schema() -> None:
    document = _document()
    assert document["asyncapi"] == "3.0.0"
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(document), key=str)
    assert not errors, "\n".join(e.message[:300] for e in errors[:5])


def test_the_schema_catches_a_broken_document() -> None:
    document = _document()
    document["operations"]["receiveTelemetryRaw"]["action"] = "consume"
    del document["info"]["title"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(document)


def test_every_ref_resolves() -> None:
    document = _document()
    refs = _refs(document)
    assert len(refs) > 30
    for ref in refs:
        _resolve(document, ref)


def test_channels_are_the_topic_table() -> None:
    document = _document()
    addresses = {c["address"] for c in document["channels"].values()}
    expected = {t.name for t in ALL_TOPICS if t not in FEEDS} | {"airgrid.feed.{department}"}
    assert addresses == expected
    parameter = document["components"]["parameters"]["department"]
    assert parameter["enum"] == list(DEPARTMENT_CODES)
    by_address = {c["address"]: c for c in document["channels"].values()}
    for topic in ALL_TOPICS:
        if topic not in FEEDS:
            assert by_address[topic.name]["bindings"]["kafka"]["partitions"] == topic.partitions
    operations = document["operations"].values()
    assert {_resolve(document, o["channel"]["$ref"])["address"] for o in operations} == expected


def test_asyncapi_is_what_the_topic_table_renders() -> None:
    assert (ROOT / "asyncapi.yaml").read_text() == asyncapi_text(), (
        "asyncapi.yaml is stale: run `python -m deploy.generate`"
    )
