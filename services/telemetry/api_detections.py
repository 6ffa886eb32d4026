"""Detection ingest from gateways: a DetectionBatch (protobuf) or JSON body, each detection
validated and produced to airgrid.detections or, with its reason, airgrid.detections.dlq."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.bus import now_ms
from airgrid.geo import Ring
from airgrid.reference import load_reference
from airgrid.topics import PROTOBUF
from airgrid.v1 import inspection_pb2
from services.telemetry.api_deps import ProducerDep, RegistryDep, StatesDep
from services.telemetry.batch_bodies import decode_batch
from services.telemetry.detection_ingest import ingest_detections
from services.telemetry.detection_schemas import (
    BATCH_JSON_SCHEMA,
    MAX_BATCH_DETECTIONS,
    DetectionBatchIn,
    DetectionRejected,
    DetectionsAccepted,
)

router = APIRouter(prefix="/v1", tags=["inspection"])


def _boundary(request: Request) -> Ring:
    """The zone boundary of the service's reference data (loaded once, then cached)."""
    boundary: Ring = load_reference(request.app.state.infra.settings.reference_data).zone.boundary
    return boundary


BoundaryDep = Annotated[Ring, Depends(_boundary)]


@router.post(
    "/detections",
    status_code=202,
    summary="Batch of detections from a gateway (protobuf DetectionBatch or JSON)",
    description=(
        f"At most {MAX_BATCH_DETECTIONS} detections. Each is checked on its own: a valid one "
        "goes to `airgrid.detections`, a bad one (unknown drone or scenario, confidence "
        "outside 0…1, bad media digest, outside the zone, too new or too old, drone not in "
        "flight, malformed) to `airgrid.detections.dlq` with its reason, and is listed under "
        "`rejected`. The whole request is refused, with nothing produced, when the body cannot "
        "be read (400, 415, 422), the batch is too large (413), or it names a drone the "
        "gateway may not report (403)."
    ),
    responses={
        400: {"description": "The protobuf body is not a DetectionBatch"},
        403: {"description": "Not a gateway or admin, or a drone outside the gateway's nest"},
        413: {"description": f"More than {MAX_BATCH_DETECTIONS} detections"},
        415: {"description": "Neither JSON nor protobuf"},
        503: {"description": "The broker did not take the batch; retry it whole"},
    },
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
async def post_detections(
    request: Request,
    principal: CurrentPrincipal,
    producer: ProducerDep,
    registry: RegistryDep,
    states: StatesDep,
    boundary: BoundaryDep,
) -> DetectionsAccepted:
    require_role(principal, Role.GATEWAY, Role.ADMIN)
    detections = decode_batch(
        request.headers.get("content-type", ""),
        await request.body(),
        message="DetectionBatch",
        from_protobuf=lambda body: list(inspection_pb2.DetectionBatch.FromString(body).detections),
        from_json=lambda body: [
            item.to_proto() for item in DetectionBatchIn.model_validate_json(body).detections
        ],
    )
    result = await ingest_detections(
        principal,
        detections,
        producer=producer,
        registry=registry,
        states=states,
        boundary=boundary,
        now_ms=now_ms(),
    )
    return DetectionsAccepted(
        accepted=result.accepted,
        rejected=[
            DetectionRejected(
                index=r.index,
                id=r.detection.id,
                reason=r.rejection.reason.value,
                detail=r.rejection.detail,
            )
            for r in result.rejected
        ],
    )
