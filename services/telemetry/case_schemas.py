"""The REST shapes of cases: a case as read, a page of them, and a transition request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.telemetry.domain.cases import Action, Case, CaseStatus


class MediaRead(BaseModel):
    uri: str
    sha256: str


class CaseRead(BaseModel):
    id: str
    scenario: str
    departments: list[str] = Field(description="The scenario's owner departments")
    status: CaseStatus
    lon: float = Field(description="The anchor: the first detection's location")
    lat: float
    first_seen_ms: int
    last_seen_ms: int
    detection_count: int
    best_detection_id: str
    best_confidence: float
    best_media: MediaRead
    incident_id: str = Field(description="The incident it was escalated to; empty if none")
    version: int = Field(description="Grows by one with every change")


class CasePage(BaseModel):
    items: list[CaseRead]
    total: int
    limit: int
    offset: int


class CaseTransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    incident_id: str = Field(
        default="",
        max_length=64,
        description="The incident the case is escalated to; only with `escalate`, which needs it",
    )


def case_read(case: Case) -> CaseRead:
    return CaseRead(
        id=case.id,
        scenario=case.scenario,
        departments=list(case.departments),
        status=case.status,
        lon=case.lon,
        lat=case.lat,
        first_seen_ms=case.first_seen_ms,
        last_seen_ms=case.last_seen_ms,
        detection_count=case.count,
        best_detection_id=case.best_detection_id,
        best_confidence=case.best_confidence,
        best_media=MediaRead(uri=case.best_media_uri, sha256=case.best_media_sha256),
        incident_id=case.incident_id,
        version=case.version,
    )
