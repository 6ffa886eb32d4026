"""Query parameter types that accept exactly what the OpenAPI document says, and no more.

Pydantic's lax mode would take "1.0" or "+1" as an integer, "yes" or "on" as a boolean and
"0.5" as an instant (seconds since the epoch); a client generated from the document sends
none of those, so each is refused with 422 like any other schema violation. Pagination is
bounded in the document and in the code alike.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000

_INTEGER = re.compile(r"-?[0-9]+")
# RFC 3339 date-time, which OpenAPI's `format: date-time` means: a full date, a time and an
# offset (`Z` or ±hh:mm).
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _integer(value: Any) -> Any:
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError("must be a whole number written in digits, for example 25")
    return value


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"
    return value


def _date_time(value: Any) -> Any:
    if isinstance(value, str) and not _DATE_TIME.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, for example 2026-05-01T08:00:00Z"
        )
    return value


# Put each after the Query(...) of the parameter: FastAPI turns the bounds of a Query into
# minimum and maximum of the document only when the Query comes first.
WholeNumber = BeforeValidator(_integer)
TrueOrFalse = BeforeValidator(_boolean)
DateTime = Annotated[datetime, BeforeValidator(_date_time)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page."), WholeNumber]
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Items to skip, at most 1,000,000."), WholeNumber
]
