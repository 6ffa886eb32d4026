"""Grafana's PostgreSQL macros, expanded the way its datasource expands them before a query.

First the plain substitutions every Grafana SQL datasource makes ($__interval_ms, $__interval,
$__unixEpochFrom(), $__unixEpochTo()), then each `$__name(args)` call through the PostgreSQL
macro engine: time filters as RFC 3339 literals in UTC, epoch filters as integers. An unknown
macro is an error, as it is in Grafana."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_CALL = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


class UnknownMacro(ValueError):
    """The SQL names a macro Grafana's PostgreSQL datasource does not know (or misuses one)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # aware
    end: datetime
    interval_ms: int = 15_000


def rfc3339_nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time: fraction without trailing zeros, 'Z' suffix."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _interval_text(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _macro(name: str, args: list[str], window: TimeRange) -> str:
    start, end = rfc3339_nano(window.start), rfc3339_nano(window.end)
    column = args[0] if args and args[0] else ""
    needs_column = {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter"}
    needs_column.add("__unixEpochNanoFilter")
    if name in needs_column and not column:
        raise UnknownMacro(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{column} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {column}) as "time"'
    if name == "__timeFilter":
        return f"{column} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name == "__unixEpochFilter":
        return f"{column} >= {_epoch(window.start)} AND {column} <= {_epoch(window.end)}"
    nano_start = _epoch(window.start) * 10**9 + window.start.microsecond * 1000
    nano_end = _epoch(window.end) * 10**9 + window.end.microsecond * 1000
    if name == "__unixEpochNanoFilter":
        return f"{column} >= {nano_start} AND {column} <= {nano_end}"
    if name == "__unixEpochNanoFrom":
        return str(nano_start)
    if name == "__unixEpochNanoTo":
        return str(nano_end)
    raise UnknownMacro(f"unknown macro {name!r}")


def expand(sql: str, window: TimeRange) -> str:
    """`sql` as Grafana's PostgreSQL datasource sends it for the dashboard time `window`."""
    sql = sql.replace("$__interval_ms", str(window.interval_ms))
    sql = sql.replace("$__interval", _interval_text(window.interval_ms))
    sql = sql.replace("$__unixEpochFrom()", str(_epoch(window.start)))
    sql = sql.replace("$__unixEpochTo()", str(_epoch(window.end)))
    expanded = _CALL.sub(
        lambda m: _macro(m.group(1), [a.strip() for a in m.group(2).split(",")], window), sql
    )
    if "$" in expanded:
        raise UnknownMacro(f"a template variable is left in {expanded!r}")
    return expanded
