"""Registry geometry and request shapes: pure checks, no database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from airgrid.problems import Problem
from services.registry.domain.geojson import polygon_problems, position_problems
from services.registry.models import NestRow
from services.registry.schemas import DroneCreate, GeofenceCreate, NestCreate
from services.registry.service import check_if_match

SQUARE = [[114.40, 30.47], [114.41, 30.47], [114.41, 30.48], [114.40, 30.48], [114.40, 30.47]]


def test_a_closed_simple_polygon_passes() -> None:
    assert polygon_problems([SQUARE]) == []


@pytest.mark.parametrize(
    ("rings", "words"),
    [
        ([SQUARE[:-1]], "open"),
        ([[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]], "self-intersecting"),
        ([SQUARE[:3]], "at least 4"),
        ([[[0, 0], [1, 0], [1, 0], [0, 1], [0, 0]]], "self-intersecting"),
        ([[[200, 0], [1, 0], [1, 1], [200, 0]]], "longitude"),
        ([[[0, 0], [1, "x"], [1, 1], [0, 0]]], "numbers"),
        ([], "linear rings"),
    ],
)
def test_bad_polygons_are_named(rings: list[list[list[float]]], words: str) -> None:
    problems = polygon_problems(rings)
    assert problems and words in " ".join(problems)


def test_swapped_latitude_and_longitude_are_called_out() -> None:
    (problem,) = position_problems([30.48, 114.41], "location")
    assert "latitude" in problem and "longitude first" in problem
    assert position_problems([114.41, 30.48], "location") == []


def test_shapes_refuse_what_the_issue_lists() -> None:
    with pytest.raises(ValidationError, match="latitude"):
        NestCreate.model_validate(
            {
                "id": "n1",
                "name": "n",
                "location": {"type": "Point", "coordinates": [114.4, 91]},
                "charging_slots": 2,
            }
        )
    with pytest.raises(ValidationError, match="self-intersecting"):
        GeofenceCreate.model_validate(
            {
                "id": "g1",
                "name": "g",
                "kind": "no-fly",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                },
            }
        )
    with pytest.raises(ValidationError, match="unknown capabilities"):
        DroneCreate.model_validate(
            {
                "id": "d1",
                "model": "m",
                "home_nest": "n1",
                "capabilities": ["laser"],
                "cruise_speed_mps": 10,
                "max_speed_mps": 12,
                "endurance_s": 1000,
            }
        )


def test_if_match_compares_the_version() -> None:
    nest = NestRow(id="n1", version=3)
    check_if_match('"3"', nest)
    check_if_match('W/"3"', nest)
    check_if_match("*", nest)
    with pytest.raises(Problem) as stale:
        check_if_match('"2"', nest)
    assert stale.value.status == 412
    with pytest.raises(Problem) as missing:
        check_if_match(None, nest)
    assert missing.value.status == 428
