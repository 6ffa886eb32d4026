"""Case use cases behind the REST API: read the cases a caller may see, and take an action on
one by the pure rule (domain/cases.py).

A transition reads the case, decides, and writes the new status only over the version it read;
when another write got there first it reads and decides again, so two conflicting actions
never both win: the second is decided against the first's result (a repeat, or a 409). The
changed case is then published like every case change (case_publisher.py). A repeat of the
action that led to the current status answers the case as it is and publishes its current
version again under the same event id, which consumers drop as a repeat: so a retry after a
failed publication completes it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Principal
from airgrid.bus import Producer, now_ms
from airgrid.problems import Problem
from services.telemetry.case_precision import refresh_precision
from services.telemetry.case_publisher import CaseChange, publish_case_changes
from services.telemetry.case_store import visible_case, write_if_unchanged
from services.telemetry.domain.cases import Action, Case, Outcome, transition

# Reads again after a lost race at most this often; each loss means another change landed.
MAX_ATTEMPTS = 5


async def take_action(
    *,
    engine: AsyncEngine,
    producer: Producer,
    principal: Principal,
    case_id: str,
    action: Action,
    incident_id: str = "",
) -> Case:
    for _ in range(MAX_ATTEMPTS):
        case = await visible_case(engine, case_id, principal)
        result = transition(case, action, incident_id=incident_id)
        if result.outcome is Outcome.NOT_ALLOWED:
            raise Problem(
                409,
                "Transition not allowed",
                result.detail,
                kind="transition-not-allowed",
                case_status=case.status.value,
                action=action.value,
            )
        if result.outcome is Outcome.UNCHANGED:
            await _publish(producer, case, action, principal)
            return case
        if await write_if_unchanged(engine, result.case, read_version=case.version):
            await _publish(producer, result.case, action, principal)
            await refresh_precision(engine)
            return result.case
    raise Problem(
        409,
        "Case busy",
        f"Case {case_id} kept changing while this action was decided; send it again.",
        kind="case-busy",
        headers={"Retry-After": "1"},
    )


async def _publish(producer: Producer, case: Case, action: Action, principal: Principal) -> None:
    change = CaseChange(case, action=action.value, actor=principal.credential_id)
    try:
        await publish_case_changes(producer, [change], now_ms=now_ms())
    except Exception as error:
        raise Problem(
            503,
            "Not published",
            f"Case {case.id} is {case.status.value}, but the broker did not take the change; "
            "send the same action again to publish it.",
            kind="not-published",
            headers={"Retry-After": "1"},
        ) from error
