"""Batch ingest from gateways: a TelemetryBatch (protobuf) or JSON body onto the raw topic."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.problems import Problem
from airgrid.topics import PROTOBUF
from airgrid.v1 import telemetry_pb2
from services.telemetry import service
from services.telemetry.api_deps import ProducerDep, RegistryDep, StatesDep
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
    records = _decode_batch(request.headers.get("content-type", ""), await request.body())
    accepted = await service.ingest_batch(
        principal, records, producer=producer, registry=registry, states=states
    )
    return IngestAccepted(accepted=accepted)


def _decode_batch(content_type: str, body: bytes) -> list[telemetry_pb2.Telemetry]:
    media = content_type.split(";")[0].strip().lower()
    if media in (PROTOBUF, "application/protobuf"):
        try:
            return list(telemetry_pb2.TelemetryBatch.FromString(body).records)
        except Exception as error:
            raise Problem(
                400,
                "Malformed protobuf",
                f"The body is not a TelemetryBatch ({error}).",
                kind="malformed-protobuf",
            ) from error
    if media in ("application/json", ""):
        try:
            batch = TelemetryBatchIn.model_validate_json(body)
        except ValidationError as error:
            raise RequestValidationError(_at_body(error.errors())) from error
        return [record.to_proto() for record in batch.records]
    raise Problem(
        415,
        "Unsupported media type",
        f"Send application/json or {PROTOBUF}, not {media}.",
        kind="unsupported-media-type",
    )


def _at_body(errors: list[Any]) -> list[Any]:
    return [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]
