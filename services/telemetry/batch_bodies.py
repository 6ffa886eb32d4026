"""A gateway's batch body, protobuf or JSON, decoded the same way on every batch route: 400
for protobuf that does not parse, 422 naming the JSON fields, 415 for any other media type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from airgrid.problems import Problem
from airgrid.topics import PROTOBUF

T = TypeVar("T")


def decode_batch(
    content_type: str,
    body: bytes,
    *,
    message: str,
    from_protobuf: Callable[[bytes], list[T]],
    from_json: Callable[[bytes], list[T]],
) -> list[T]:
    """The batch's items; `message` names the protobuf message in the 400's detail."""
    media = content_type.split(";")[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf"):
        try:
            return from_protobuf(body)
        except Exception as error:
            raise Problem(
                400,
                "Malformed protobuf",
                f"The body is not a {message} ({error}).",
                kind="malformed-protobuf",
            ) from error
    if media in ("application/json", ""):
        try:
            return from_json(body)
        except ValidationError as error:
            raise RequestValidationError(_at_body(error.errors())) from error
    raise Problem(
        415,
        "Unsupported media type",
        f"Send application/json or {PROTOBUF}, not {media}.",
        kind="unsupported-media-type",
    )


def _at_body(errors: list[Any]) -> list[Any]:
    return [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]
