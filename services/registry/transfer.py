"""Registry import and export: one JSON document carries a whole city's registry.

The document is {"format": "airgrid-registry/1", "departments": [...], "nests": [...],
"drones": [...], "geofences": [...]}, each entry in the shape POST /v1/<kind> takes. An import
is one transaction: it creates what is new, updates what differs (a new version and a change
event each), leaves the rest, and on any bad entry changes nothing and names every problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from airgrid.problems import Problem
from airgrid.reference import Zone
from services.registry import service
from services.registry.models import DepartmentRow, DroneRow, GeofenceRow, NestRow
from services.registry.schemas import (
    DepartmentCreate,
    DepartmentUpdate,
    DroneCreate,
    DroneUpdate,
    GeofenceCreate,
    GeofenceUpdate,
    NestCreate,
    NestUpdate,
)

FORMAT = "airgrid-registry/1"
# In dependency order: drones need their nests.
SECTIONS: tuple[tuple[str, str, type[BaseModel], type[BaseModel]], ...] = (
    ("departments", "department", DepartmentCreate, DepartmentUpdate),
    ("nests", "nest", NestCreate, NestUpdate),
    ("drones", "drone", DroneCreate, DroneUpdate),
    ("geofences", "geofence", GeofenceCreate, GeofenceUpdate),
)
KEY_FIELD = {"department": "code", "nest": "id", "drone": "id", "geofence": "id"}


class ImportRejected(ValueError):
    """The document cannot be imported; the message lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ImportResult:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        parts = []
        for section, kind, _, _ in SECTIONS:
            parts.append(
                f"{section}: {self.created.get(kind, 0)} created, "
                f"{self.updated.get(kind, 0)} updated, {self.unchanged.get(kind, 0)} unchanged"
            )
        return "; ".join(parts)


def _validate(document: Any) -> list[tuple[str, list[BaseModel]]]:
    if not isinstance(document, dict):
        raise ImportRejected(["the document must be a JSON object with a `format` key"])
    if document.get("format") != FORMAT:
        raise ImportRejected(
            [f"format is {document.get('format')!r}; this importer reads {FORMAT!r}"]
        )
    unknown = sorted(set(document) - {"format"} - {s[0] for s in SECTIONS})
    problems = [f"unknown section {name!r}" for name in unknown]
    parsed: list[tuple[str, list[BaseModel]]] = []
    for section, kind, create, _ in SECTIONS:
        entries = document.get(section, [])
        if not isinstance(entries, list):
            problems.append(f"{section} must be a list")
            continue
        bodies: list[BaseModel] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            try:
                body = create.model_validate(entry)
            except ValidationError as error:
                for e in error.errors():
                    where = ".".join(str(p) for p in e["loc"]) or "entry"
                    problems.append(f"{section}[{i}].{where}: {e['msg']}")
                continue
            key = getattr(body, KEY_FIELD[kind])
            if key in seen:
                problems.append(f"{section}[{i}]: duplicate {kind} id {key!r}")
            seen.add(key)
            bodies.append(body)
        parsed.append((kind, bodies))
    if problems:
        raise ImportRejected(problems)
    return parsed


async def import_registry(
    sessions: async_sessionmaker[AsyncSession],
    document: Any,
    *,
    actor: service.Actor,
    zone: Zone,
) -> ImportResult:
    parsed = _validate(document)
    try:
        return await _apply(sessions, parsed, actor, zone)
    except IntegrityError as error:
        raise ImportRejected([f"the database refused the import: {error.orig}"]) from None


async def _apply(
    sessions: async_sessionmaker[AsyncSession],
    parsed: list[tuple[str, list[BaseModel]]],
    actor: service.Actor,
    zone: Zone,
) -> ImportResult:
    result = ImportResult()
    problems: list[str] = []
    async with sessions() as session, session.begin():
        for kind, bodies in parsed:
            update_shape = next(s[3] for s in SECTIONS if s[1] == kind)
            for body in bodies:
                key = getattr(body, KEY_FIELD[kind])
                existing: service.Row | None = None
                try:
                    existing = await session.get(service.ROWS[kind], key)
                    if existing is None:
                        await service.create(session, kind=kind, body=body, actor=actor, zone=zone)
                        result.created[kind] = result.created.get(kind, 0) + 1
                        continue
                    before = existing.version
                    fields = body.model_dump(exclude={KEY_FIELD[kind]})
                    change = update_shape.model_validate(fields)
                    row = await service.update(
                        session,
                        kind=kind,
                        key=key,
                        body=change,
                        if_match="*",
                        actor=actor,
                        zone=zone,
                    )
                    counter = result.updated if row.version != before else result.unchanged
                    counter[kind] = counter.get(kind, 0) + 1
                except Problem as problem:
                    problems.append(f"{kind} {key}: {problem.title}: {problem.detail}")
                    if existing is not None:
                        session.expunge(existing)  # keep its refused change out of any flush
        if problems:
            raise ImportRejected(problems)  # rolls the whole import back
    return result


async def export_registry(session: AsyncSession) -> dict[str, Any]:
    """The registry as an import document (no credentials: those never leave)."""
    document: dict[str, Any] = {"format": FORMAT}
    tables: dict[str, tuple[Any, Any]] = {
        "department": (DepartmentRow, DepartmentRow.code),
        "nest": (NestRow, NestRow.id),
        "drone": (DroneRow, DroneRow.id),
        "geofence": (GeofenceRow, GeofenceRow.id),
    }
    for section, kind, _, _ in SECTIONS:
        cls, order = tables[kind]
        rows: Sequence[Any] = (await session.scalars(select(cls).order_by(order))).all()
        entries = []
        for row in rows:
            entry = service.document_of(row)
            entry.pop("version", None)
            entries.append(entry)
        document[section] = entries
    return document
