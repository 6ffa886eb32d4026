"""Batch ingest from gateways: a TelemetryBatch (protobuf) or JSON body onto the raw topic."""

from __future__ import annotations

from fastapi import APIRouter, Request

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.topics import PROTOBUF
from airgrid.v1 import telemetry_pb2
from services.telemetry import service
from services.telemetry.api_deps import ProducerDep, RegistryDep, StatesDep
from services.telemetry.batch_bodies import decode_batch
from services.telemetry.schemas import BATCH_JSON_SCHEMA, IngestAccepted, TelemetryBatchIn

router = APIRouter(prefix="/v1", tags=["telemetry"])


@router.post(
    "/telemetry",
    status_code=202,
    summary="Batch ingest from a gateway (protobuf TelemetryBatch or JSON)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": BATCH_JSON_SCHEMA},
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def ingest(
    request: Request,
    principal: CurrentPrincipal,
    producer: ProducerDep,
    registry: RegistryDep,
    states: StatesDep,
) -> IngestAccepted:
    require_role(principal, Role.GATEWAY, Role.ADMIN)
    records = decode_batch(
        request.headers.get("content-type", ""),
        await request.body(),
        message="TelemetryBatch",
        from_protobuf=lambda body: list(telemetry_pb2.TelemetryBatch.FromString(body).records),
        from_json=lambda body: [
            item.to_proto() for item in TelemetryBatchIn.model_validate_json(body).records
        ],
    )
    accepted = await service.ingest_batch(
        principal, records, producer=producer, registry=registry, states=states
    )
    return IngestAccepted(accepted=accepted)
