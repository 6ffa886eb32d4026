"""Telemetry REST read of inspection freshness: shares per plan and overall, overdue cells."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from airgrid.auth import CurrentPrincipal
from airgrid.query_params import WholeNumber
from services.telemetry.freshness_keeper import FreshnessKeeper
from services.telemetry.freshness_schemas import (
    DEFAULT_OVERDUE_LIMIT,
    MAX_OVERDUE_LIMIT,
    FreshnessRead,
    freshness_read,
)

router = APIRouter(prefix="/v1", tags=["inspection"])

FRESHNESS_DESCRIPTION = """\
How much of what the inspection plans ask to see was seen on time, now.

- A coverage cell is seen by an accepted fix of a flying drone 30–150 m above ground whose
  camera footprint covers the cell's centre; a plan's cells are due while the plan is active
  and fresh within its revisit interval (docs/inspection.md).
- `share` is over every due cell (a cell is fresh when fresh for every active plan holding
  it); `plans` gives each plan's share with its department and interval.
- `overdue` is a GeoJSON FeatureCollection of the latest overdue cells (never-seen first),
  at most `limit`; `overdue_total` counts them all.
- Any replica answers: each holds the whole zone's sightings, its own live and the other
  replicas' within two snapshot periods (10 s each).
"""


def _keeper(request: Request) -> FreshnessKeeper:
    keeper: FreshnessKeeper = request.app.state.freshness
    return keeper


@router.get(
    "/inspection/freshness",
    summary="Share of inspection cells seen within their plan's interval",
    description=FRESHNESS_DESCRIPTION,
    responses={200: {"description": "The shares now and the latest overdue cells."}},
)
async def freshness(
    principal: CurrentPrincipal,
    keeper: Annotated[FreshnessKeeper, Depends(_keeper)],
    limit: Annotated[
        int,
        Query(ge=0, le=MAX_OVERDUE_LIMIT, description="Most overdue cells to list"),
        WholeNumber,
    ] = DEFAULT_OVERDUE_LIMIT,
) -> FreshnessRead:
    limit = max(0, min(limit, MAX_OVERDUE_LIMIT))  # the schema bounds it; so does the code
    return freshness_read(*keeper.answer(limit))
