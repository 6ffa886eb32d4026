"""Telemetry REST reads: the latest state of the fleet or of one drone, and a drone's track."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.query_params import DateTime, WholeNumber
from services.telemetry import service
from services.telemetry.api_deps import (
    BboxQuery,
    EngineDep,
    HeardSinceDep,
    StatesDep,
    parse_bbox,
)
from services.telemetry.schemas import DroneStateRead, FleetRead, FlightModeName, TrackRead

router = APIRouter(prefix="/v1", tags=["telemetry"])


@router.get("/drones/states", summary="Latest state of every drone")
async def fleet_states(
    principal: CurrentPrincipal,
    states: StatesDep,
    heard_since_ms: HeardSinceDep,
    status: Annotated[FlightModeName | None, Query(description="Flight mode filter")] = None,
    bbox: BboxQuery = None,
) -> FleetRead:
    return service.fleet_states(
        states,
        heard_since_ms=heard_since_ms,
        status=status,
        box=parse_bbox(bbox) if bbox else None,
    )


@router.get("/drones/{drone_id}/state", summary="Latest state of one drone")
async def drone_state(
    drone_id: str, principal: CurrentPrincipal, states: StatesDep, heard_since_ms: HeardSinceDep
) -> DroneStateRead:
    return service.drone_state(states, drone_id, heard_since_ms=heard_since_ms)


@router.get("/drones/{drone_id}/track", summary="Track history of one drone in a time range")
async def drone_track(
    drone_id: str,
    principal: CurrentPrincipal,
    engine: EngineDep,
    since: Annotated[DateTime, Query(description="Start, inclusive (RFC 3339)")],
    until: Annotated[DateTime | None, Query(description="End, exclusive; default now")] = None,
    max_points: Annotated[
        int, Query(ge=2, le=10_000, description="Downsample to this"), WholeNumber
    ] = 1000,
) -> TrackRead:
    require_role(principal, Role.OPERATOR, Role.ADMIN, Role.DEPARTMENT)
    return await service.drone_track(
        engine,
        drone_id,
        since=since,
        until=until or datetime.now(UTC),
        max_points=max_points,
    )
