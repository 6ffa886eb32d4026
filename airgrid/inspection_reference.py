"""The inspection half of a zone's reference data: the scenario catalogue (scenarios.json),
the plans the zone ships (inspection_plans.json), and how one entry of each is read.
Both files are optional; reference.py loads them and checks them against the other files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airgrid import reference_fields as fields
from airgrid.reference_fields import PRIORITIES

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class EscalationSpec:
    min_confidence: float
    """A detection at least this confident (0 … 1) escalates its case."""
    incident_type: str
    """Code from incident_types.json."""
    priority: int


@dataclass(frozen=True)
class ScenarioSpec:
    """One entry of the scenario catalogue: what a detection is about and who owns its cases."""

    code: str
    name: str
    departments: tuple[str, ...]
    severity: str
    """One of SEVERITIES."""
    merge_radius_m: float
    merge_window_s: int
    escalation: EscalationSpec | None
    description: str = ""


@dataclass(frozen=True)
class InspectionPlanSpec:
    """A plan as the zone ships it. Its geometry and windows are checked by the registry's
    inspection rules when it is seeded (the kernel knows no registry rules)."""

    id: str
    name: str
    department: str
    geometry: Mapping[str, Any]
    """GeoJSON Polygon (an area) or LineString (a corridor's centre line)."""
    width_m: float | None
    revisit_interval_s: int
    active_windows: tuple[tuple[str, str], ...]
    """(start, end) local HH:MM pairs; empty means all day."""


def scenario(entry: Mapping[str, Any]) -> ScenarioSpec:
    severity = fields.text(entry, "severity")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {list(SEVERITIES)}")
    window = entry["merge_window_s"]
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"merge_window_s must be a whole number of seconds >= 1, not {window!r}")
    rule = entry.get("escalation")
    escalation = None
    if rule is not None:
        if not isinstance(rule, dict):
            raise ValueError("escalation must be an object or null")
        confidence = fields.number(rule, "min_confidence")
        if not 0 <= confidence <= 1:
            raise ValueError(f"escalation.min_confidence must be within 0 … 1, not {confidence}")
        priority = rule["priority"]
        if isinstance(priority, bool) or priority not in PRIORITIES:
            raise ValueError(f"escalation.priority must be 1 … 4, not {priority!r}")
        escalation = EscalationSpec(confidence, fields.text(rule, "incident_type"), int(priority))
    departments = fields.codes(entry, "departments")
    if not departments:
        raise ValueError("departments must name at least one owner department")
    return ScenarioSpec(
        code=fields.text(entry, "code"),
        name=fields.text(entry, "name"),
        departments=departments,
        severity=severity,
        merge_radius_m=fields.number(entry, "merge_radius_m", positive=True),
        merge_window_s=window,
        escalation=escalation,
        description=str(entry.get("description", "")),
    )


def inspection_plan(entry: Mapping[str, Any]) -> InspectionPlanSpec:
    geometry = entry["geometry"]
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "LineString"):
        raise ValueError("geometry must be a GeoJSON Polygon (area) or LineString (corridor)")
    interval = entry["revisit_interval_s"]
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise ValueError(f"revisit_interval_s must be whole seconds, not {interval!r}")
    windows = entry.get("active_windows", [])
    if not isinstance(windows, list) or not all(
        isinstance(w, dict) and isinstance(w.get("start"), str) and isinstance(w.get("end"), str)
        for w in windows
    ):
        raise ValueError('active_windows must be a list of {"start": "HH:MM", "end": "HH:MM"}')
    width = fields.number(entry, "width_m") if entry.get("width_m") is not None else None
    return InspectionPlanSpec(
        id=fields.text(entry, "id"),
        name=fields.text(entry, "name"),
        department=fields.text(entry, "department"),
        geometry=geometry,
        width_m=width,
        revisit_interval_s=interval,
        active_windows=tuple((w["start"], w["end"]) for w in windows),
    )
