"""HTTP shapes of inspection plans and the scenario catalogue (Create, Update, Read).

Shape rules (types, ranges, time formats) answer 422 here, naming the field; rules that need
the database or the zone (department exists, geometry in the zone, width goes with a
corridor) are the use cases' (services/registry/inspection.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from services.registry.domain.inspection_rules import (
    MAX_CORRIDOR_WIDTH_M,
    MAX_LINE_POSITIONS,
    MAX_REVISIT_S,
    MIN_REVISIT_S,
    ActiveWindow,
    line_problems,
)
from services.registry.schemas import DEPARTMENT_CODE, ENTITY_ID, PolygonGeometry, Position, Strict

SCENARIO_CODE = r"^[a-z][a-z0-9_]{1,39}$"
# Numbers are strict (JSON true is not 1) and finite (NaN or infinity is no measure).
CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
Severity = Literal["low", "medium", "high", "critical"]
PlanKind = Literal["area", "corridor"]
MAX_WINDOWS = 8
MAX_MERGE_RADIUS_M = 5_000.0
MAX_MERGE_WINDOW_S = 7 * 86_400


class LineStringGeometry(Strict):
    type: Literal["LineString"]
    coordinates: list[Position] = Field(
        min_length=2,
        max_length=MAX_LINE_POSITIONS,
        description="The corridor's centre line, [longitude, latitude] positions.",
    )

    @field_validator("coordinates")
    @classmethod
    def _in_range(cls, value: list[list[float]]) -> list[list[float]]:
        problems = line_problems(value)
        if problems:
            raise ValueError("; ".join(problems[:3]))
        return value


PlanGeometry = Annotated[PolygonGeometry | LineStringGeometry, Field(discriminator="type")]


class WindowBody(Strict):
    start: str = Field(pattern=CLOCK_PATTERN, examples=["07:00"], description="Local HH:MM.")
    end: str = Field(
        pattern=CLOCK_PATTERN,
        examples=["09:00"],
        description="Local HH:MM, exclusive; before start means the window runs past midnight.",
    )

    @field_validator("end")
    @classmethod
    def _opens(cls, end: str, info: Any) -> str:
        start = info.data.get("start")
        if start is not None:
            ActiveWindow.parse(start, end)
        return end


RevisitSeconds = Annotated[
    int,
    Field(
        strict=True,
        ge=MIN_REVISIT_S,
        le=MAX_REVISIT_S,
        description=f"Each place of the plan seen again within this many seconds "
        f"({MIN_REVISIT_S} s … {MAX_REVISIT_S} s).",
    ),
]
WidthMetres = Annotated[
    float,
    Field(
        strict=True,
        allow_inf_nan=False,
        gt=0,
        le=MAX_CORRIDOR_WIDTH_M,
        description="A corridor's full width in metres.",
    ),
]
Windows = Annotated[
    list[WindowBody],
    Field(
        max_length=MAX_WINDOWS,
        description="Daily local-time windows when revisits are wanted; empty means all day.",
    ),
]


class PlanCreate(Strict):
    id: str = Field(pattern=ENTITY_ID)
    name: str = Field(min_length=1, max_length=200)
    department: str = Field(pattern=DEPARTMENT_CODE, description="The owner department's code.")
    geometry: PlanGeometry = Field(
        description="An area (Polygon) or a corridor's centre line (LineString, with width_m)."
    )
    width_m: WidthMetres | None = None
    revisit_interval_s: RevisitSeconds
    active_windows: Windows = Field(default_factory=list)


class PlanUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    department: str | None = Field(default=None, pattern=DEPARTMENT_CODE)
    geometry: PlanGeometry | None = None
    width_m: WidthMetres | None = Field(
        default=None, description="Null when the geometry becomes an area."
    )
    revisit_interval_s: RevisitSeconds | None = None
    active_windows: Windows | None = None


class WindowRead(BaseModel):
    start: str
    end: str


class PlanRead(BaseModel):
    id: str
    name: str
    department: str
    kind: PlanKind
    geometry: dict[str, Any]
    width_m: float | None
    revisit_interval_s: int
    active_windows: list[WindowRead]
    timezone: str = Field(description="The zone's time zone, in which the windows are read.")
    version: int


# -- scenarios ---------------------------------------------------------------------------


class EscalationRule(Strict):
    min_confidence: float = Field(
        strict=True,
        allow_inf_nan=False,
        ge=0,
        le=1,
        description="A detection at least this confident escalates (0 … 1).",
    )
    incident_type: str = Field(
        min_length=1, max_length=40, description="Code from the incident catalogue."
    )
    priority: int = Field(strict=True, ge=1, le=4, description="1 (life-safety) … 4 (routine).")


class ScenarioCreate(Strict):
    code: str = Field(pattern=SCENARIO_CODE)
    name: str = Field(min_length=1, max_length=200)
    departments: list[Annotated[str, Field(pattern=DEPARTMENT_CODE)]] = Field(
        min_length=1, max_length=11, description="Owner departments: their feeds get its cases."
    )
    severity: Severity
    merge_radius_m: float = Field(
        strict=True,
        allow_inf_nan=False,
        gt=0,
        le=MAX_MERGE_RADIUS_M,
        description="Detections this close are one case.",
    )
    merge_window_s: int = Field(
        strict=True, gt=0, le=MAX_MERGE_WINDOW_S, description="… if seen within this many seconds."
    )
    escalation: EscalationRule | None = None
    description: str = Field(default="", max_length=500)


class ScenarioUpdate(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    departments: list[Annotated[str, Field(pattern=DEPARTMENT_CODE)]] | None = Field(
        default=None, min_length=1, max_length=11
    )
    severity: Severity | None = None
    merge_radius_m: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, gt=0, le=MAX_MERGE_RADIUS_M
    )
    merge_window_s: int | None = Field(default=None, strict=True, gt=0, le=MAX_MERGE_WINDOW_S)
    escalation: EscalationRule | None = Field(
        default=None, description="Null removes the escalation rule."
    )
    description: str | None = Field(default=None, max_length=500)


class ScenarioRead(BaseModel):
    code: str
    name: str
    departments: list[str]
    severity: Severity
    merge_radius_m: float
    merge_window_s: int
    escalation: EscalationRule | None
    description: str
    version: int
