"""Cases over REST: list and read the cases a caller may see, and act on one (acknowledge,
dismiss, resolve, escalate). A department sees only the cases of scenarios it owns; any other
case is 404 to it, like an absent one, so ids do not leak."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from airgrid.auth import CurrentPrincipal, Role, require_role
from airgrid.query_params import DateTime, Limit, Offset
from services.telemetry import case_transitions
from services.telemetry.api_deps import DepartmentCode, EngineDep, ProducerDep
from services.telemetry.case_schemas import CasePage, CaseRead, CaseTransitionIn, case_read
from services.telemetry.case_store import CaseFilter, list_cases, visible_case
from services.telemetry.domain.cases import CaseStatus

router = APIRouter(prefix="/v1", tags=["inspection"])

READERS = (Role.DEPARTMENT, Role.OPERATOR, Role.ADMIN)

TRANSITION_DESCRIPTION = """\
Take an action on a case: `acknowledge` (from open), `dismiss` (a false alarm; from open or
acknowledged), `resolve` (from open, acknowledged or escalated), `escalate` (with
`incident_id`; from open or acknowledged).

- Repeating the action that led to the current status changes nothing and answers 200 with
  the case as it is.
- Any other action not allowed from the current status answers 409.
- A change is published on `airgrid.cases` and as a `case.updated` item on each owner
  department's feed.
"""


@router.get("/cases", summary="List the cases you may see, latest sighting first")
async def get_cases(
    principal: CurrentPrincipal,
    engine: EngineDep,
    status: Annotated[CaseStatus | None, Query(description="The case status.")] = None,
    scenario: Annotated[str | None, Query(max_length=64, description="Scenario code.")] = None,
    department: Annotated[
        DepartmentCode | None, Query(description="An owner department of the scenario.")
    ] = None,
    since: Annotated[
        DateTime | None, Query(description="Last seen at or after (RFC 3339).")
    ] = None,
    until: Annotated[DateTime | None, Query(description="Last seen before (RFC 3339).")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CasePage:
    require_role(principal, *READERS)
    where = CaseFilter(
        status=status,
        scenario=scenario,
        department=department.value if department else None,
        seen_since_ms=int(since.timestamp() * 1000) if since else None,
        seen_until_ms=int(until.timestamp() * 1000) if until else None,
    )
    found, total = await list_cases(engine, principal, where, limit=limit, offset=offset)
    return CasePage(items=[case_read(c) for c in found], total=total, limit=limit, offset=offset)


@router.get("/cases/{case_id}", summary="One case")
async def get_case(case_id: str, principal: CurrentPrincipal, engine: EngineDep) -> CaseRead:
    require_role(principal, *READERS)
    return case_read(await visible_case(engine, case_id, principal))


@router.post(
    "/cases/{case_id}/transitions",
    summary="Acknowledge, dismiss, resolve or escalate a case",
    description=TRANSITION_DESCRIPTION,
    responses={
        200: {"description": "The case after the action (or as it was, for a repeat)"},
        409: {"description": "The action is not allowed from the case's current status"},
        503: {"description": "Stored, but the broker did not take the change; send it again"},
    },
)
async def post_transition(
    case_id: str,
    body: CaseTransitionIn,
    principal: CurrentPrincipal,
    engine: EngineDep,
    producer: ProducerDep,
) -> CaseRead:
    require_role(principal, *READERS)
    case = await case_transitions.take_action(
        engine=engine,
        producer=producer,
        principal=principal,
        case_id=case_id,
        action=body.action,
        incident_id=body.incident_id,
    )
    return case_read(case)
