"""Detection ingest HTTP shapes: the batch a gateway posts in JSON and what the API answers.

The shapes check only types: every range and catalogue rule is the pure validation's
(domain/detections.py), so a bad detection goes to the DLQ with its reason instead of
failing the batch it came in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from airgrid.v1 import inspection_pb2

MAX_BATCH_DETECTIONS = 500


class MediaIn(BaseModel):
    model_config = ConfigDict(strict=True)

    uri: str = ""
    sha256: str = Field("", description="SHA-256 of the media: 64 lowercase hex digits.")


class DetectionIn(BaseModel):
    """One detection as a gateway sends it in JSON. Strict: a number field takes a number."""

    model_config = ConfigDict(strict=True)

    id: str = Field(description="Chosen by the gateway, unique per detection.")
    drone_id: str
    mission_id: str = ""
    scenario: str = Field(description="Code from the scenario catalogue.")
    confidence: float = Field(description="The algorithm's confidence, 0 … 1.")
    lon: float = Field(description="Where the detected thing is, degrees.")
    lat: float
    observed_time_ms: int = Field(
        ge=-(2**63), lt=2**63, description="Milliseconds since the Unix epoch (UTC)."
    )
    media: MediaIn
    attributes: dict[str, str] = Field(default_factory=dict)

    def to_proto(self) -> inspection_pb2.Detection:
        return inspection_pb2.Detection(
            id=self.id,
            drone_id=self.drone_id,
            mission_id=self.mission_id,
            scenario=self.scenario,
            confidence=self.confidence,
            lon=self.lon,
            lat=self.lat,
            observed_time_ms=self.observed_time_ms,
            media=inspection_pb2.MediaRef(uri=self.media.uri, sha256=self.media.sha256),
            attributes=self.attributes,
        )


class DetectionBatchIn(BaseModel):
    detections: list[DetectionIn]


def _batch_json_schema() -> dict[str, object]:
    """The batch schema with its one nested model inlined (no dangling $refs)."""
    item = DetectionIn.model_json_schema()
    media = item.pop("$defs")["MediaIn"]
    item["properties"]["media"] = media
    return {
        "type": "object",
        "required": ["detections"],
        "properties": {
            "detections": {"type": "array", "maxItems": MAX_BATCH_DETECTIONS, "items": item}
        },
    }


BATCH_JSON_SCHEMA = _batch_json_schema()


class DetectionRejected(BaseModel):
    index: int = Field(description="Position of the detection in the batch.")
    id: str
    reason: str = Field(description="The reason code, as in the DLQ's airgrid_reason header.")
    detail: str


class DetectionsAccepted(BaseModel):
    """Every detection of the batch is on a topic: the valid ones on airgrid.detections, the
    rejected ones on airgrid.detections.dlq."""

    accepted: int
    rejected: list[DetectionRejected]
