"""Telemetry REST API: one router over its resources, each a thin module that calls
service.py: drone state and track (api_drones), department feeds over SSE (api_feeds), batch
ingest from gateways (api_ingest), detections from gateways (api_detections), inspection
freshness (api_inspection), inspection cases (api_cases, over case_transitions.py)."""

from __future__ import annotations

from fastapi import APIRouter

from services.telemetry import (
    api_cases,
    api_detections,
    api_drones,
    api_feeds,
    api_ingest,
    api_inspection,
)

router = APIRouter()
for resource in (api_cases, api_detections, api_drones, api_feeds, api_ingest, api_inspection):
    router.include_router(resource.router)
