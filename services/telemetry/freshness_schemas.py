"""The freshness answer's HTTP shape: overall share, per-plan shares, overdue cells as GeoJSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from airgrid.freshness import FreshnessReport, PlanArea

MAX_OVERDUE_LIMIT = 5000
DEFAULT_OVERDUE_LIMIT = 500


class PlanFreshnessRead(BaseModel):
    plan_id: str
    department: str
    revisit_interval_s: int = Field(description="The plan's revisit interval, seconds.")
    active: bool = Field(description="Inside one of its daily windows now (or it has none).")
    cells: int = Field(description="Coverage cells of the zone the plan holds.")
    due_cells: int = Field(description="Cells due now: all of the plan's while active, else 0.")
    fresh_cells: int = Field(description="Due cells seen within the revisit interval.")
    share: float = Field(ge=0, le=1, description="fresh_cells / due_cells; 1 when none is due.")


class OverdueCellProperties(BaseModel):
    cell: int
    rank: int = Field(ge=1, description="1 is the latest relative to its plan's interval.")
    plan: str = Field(description="The active plan under which the cell is latest.")
    department: str
    last_seen_ms: int | None = Field(description="Null: never seen.")
    overdue_s: float | None = Field(description="Seconds past the deadline; null if never seen.")
    lateness: float | None = Field(description="overdue_s / the plan's interval; null if never.")


class OverdueCellFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any] = Field(description="The cell's square, a GeoJSON Polygon.")
    properties: OverdueCellProperties


class OverdueCells(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[OverdueCellFeature]


class FreshnessRead(BaseModel):
    at_ms: int = Field(description="The moment the shares are computed for (epoch ms).")
    cells: int = Field(description="Coverage cells of the zone.")
    due_cells: int = Field(description="Cells held by at least one active plan.")
    fresh_cells: int = Field(description="Due cells fresh for every active plan holding them.")
    share: float = Field(ge=0, le=1, description="fresh_cells / due_cells; 1 when none is due.")
    plans: list[PlanFreshnessRead]
    overdue: OverdueCells = Field(description="The latest overdue cells first, at most `limit`.")
    overdue_total: int = Field(description="Due cells that are not fresh, before the limit.")


def freshness_read(
    report: FreshnessReport, plans: dict[str, PlanArea], overdue: dict[str, Any]
) -> FreshnessRead:
    return FreshnessRead(
        at_ms=report.at_ms,
        cells=report.cells,
        due_cells=report.due_cells,
        fresh_cells=report.fresh_cells,
        share=report.share,
        plans=[
            PlanFreshnessRead(
                plan_id=p.plan_id,
                department=p.department,
                revisit_interval_s=plans[p.plan_id].revisit_interval_s,
                active=p.active,
                cells=p.cells,
                due_cells=p.due_cells,
                fresh_cells=p.fresh_cells,
                share=p.share,
            )
            for p in report.plans
        ],
        overdue=OverdueCells.model_validate(overdue),
        overdue_total=report.due_cells - report.fresh_cells,
    )
