"""How the files of a zone data directory are read and their fields checked: JSON files,
lists of entries, text, numbers, codes, rings and timestamps. A bad file raises
ReferenceDataError naming it; a bad field raises ValueError naming the field, which
`parse_entry` turns into a ReferenceDataError naming the file and the entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from airgrid.geo import is_valid_lon_lat, ring_self_intersects

PRIORITIES = range(1, 5)

T = TypeVar("T")


class ReferenceDataError(ValueError):
    """The zone data is missing or inconsistent; the message names the file and the entry."""


def read(directory: Path, name: str) -> Any:
    path = directory / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ReferenceDataError(f"{path} is missing; every zone directory needs it") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReferenceDataError(f"{path} is not readable UTF-8 JSON: {error}") from error


def entries(directory: Path, name: str, parse: Callable[[Mapping[str, Any]], T]) -> tuple[T, ...]:
    raw = read(directory, name)
    if not isinstance(raw, list) or not raw:
        raise ReferenceDataError(f"{name}: expected a non-empty JSON list of objects")
    return tuple(parse_entry(name, i, entry, parse) for i, entry in enumerate(raw))


def optional_entries(
    directory: Path, name: str, parse: Callable[[Mapping[str, Any]], T]
) -> tuple[T, ...]:
    """A file a zone may leave out (an empty tuple then); present, it must be well formed."""
    if not (directory / name).exists():
        return ()
    return entries(directory, name, parse)


def parse_entry(name: str, index: int, entry: Any, parse: Callable[[Mapping[str, Any]], T]) -> T:
    label = entry.get("id") or entry.get("code") if isinstance(entry, dict) else None
    where = f"{name}: entry {index}" + (f" ({label})" if label else "")
    if not isinstance(entry, dict):
        raise ReferenceDataError(f"{where}: expected a JSON object")
    try:
        return parse(entry)
    except KeyError as error:
        raise ReferenceDataError(f"{where}: the field {error.args[0]!r} is missing") from error
    except (TypeError, ValueError) as error:
        raise ReferenceDataError(f"{where}: {error}") from error


def text(entry: Mapping[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, not {value!r}")
    return value


def number(entry: Mapping[str, Any], key: str, *, positive: bool = False) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} must be a finite number, not {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key!r} must be greater than zero, not {value!r}")
    return float(value)


def count(entry: Mapping[str, Any], key: str) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key!r} must be a whole number of at least 1, not {value!r}")
    return int(value)


def codes(entry: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = entry[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} must be a list of strings, not {value!r}")
    return tuple(value)


def ring(coordinates: Any, what: str) -> tuple[tuple[float, float], ...]:
    try:
        ring = tuple((float(p[0]), float(p[1])) for p in coordinates)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{what} must be a list of [lon, lat] positions") from error
    if len(ring) < 4 or ring[0] != ring[-1]:
        raise ValueError(f"{what} must be a closed ring of at least 4 positions, first = last")
    for lon, lat in ring:
        if not is_valid_lon_lat(lon, lat):
            raise ValueError(f"{what} has an invalid position [{lon}, {lat}]")
    if ring_self_intersects(ring):
        raise ValueError(f"{what} crosses itself; a polygon edge must not cut another")
    return ring


def polygon_exterior(geometry: Any, what: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise ValueError(f"{what} must be a GeoJSON Polygon geometry")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise ValueError(f"{what} has no coordinates")
    return ring(coordinates[0], f"{what} exterior ring")


def unique(name: str, kind: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ReferenceDataError(f"{name}: {kind} {value!r} appears twice; ids must be unique")
        seen.add(value)


def timestamp(key: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an ISO 8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{key} {value!r} is not ISO 8601") from error
    if moment.tzinfo is None:
        raise ValueError(f"{key} {value!r} needs a UTC offset, e.g. +08:00")
    return moment
