"""The case escalator: posts the incident a case asks for (domain/cases.escalation_for) to
dispatch's `POST /v1/incidents` with the case id as `Idempotency-Key`, then escalates the case
with the incident's id through the same transition as the REST API (case_transitions.py:
version guard, published on airgrid.cases and the owners' feeds).

- Off the hot path: the case keeper hands every changed case to `consider`, which only queues
  it; one task of its own does the I/O, so a slow or absent dispatch never slows the stream.
- Nothing lost: the pending work is derived, not stored. A case is pending while it is open or
  acknowledged and its scenario's rule asks for an incident; at start the escalator queues
  every such stored case again. Dispatch down, a 5xx, a 409 (the key in flight) or a 429 is
  tried again with doubling waits up to `escalation_retry_max_s`.
- Never twice: the request body is a function of the case id, its anchor and the rule only,
  and the key is the case id, so every retry, restart or second replica posting the same
  case gets the first incident back (dispatch replays it) instead of a new one.
- Refused: any other 4xx is logged with its problem body and counted, and not tried again
  until the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from airgrid.auth import Principal, Role
from airgrid.bus import Producer, TopicView
from airgrid.config import Settings
from airgrid.problems import Problem
from airgrid.reference import ScenarioSpec
from services.telemetry.case_keeper import catalogue
from services.telemetry.case_store import escalation_candidates, stored_cases
from services.telemetry.case_transitions import take_action
from services.telemetry.domain.cases import Action, Case, EscalationRequest, escalation_for
from services.telemetry.metrics import (
    CASE_ESCALATIONS,
    CASE_ESCALATIONS_PENDING,
    ESCALATION_OUTCOMES,
)

log = logging.getLogger("airgrid.telemetry")

# Who takes the escalate transition: the actor on the published case event.
ESCALATOR = Principal(credential_id="telemetry-case-escalator", role=Role.ADMIN)
FIRST_WAIT_S = 1.0
POST_TIMEOUT_S = 10.0
# Answers that mean "not now": the same request later may succeed.
RETRYABLE = frozenset({408, 409, 425, 429})
# Cases settled (escalated or refused) in this process, so a stale copy handed again by the
# keeper is not posted again; bounded, the oldest forgotten first.
SETTLED_KEPT = 10_000


def incident_body(
    request: EscalationRequest, case: Case, scenario: ScenarioSpec, capabilities: tuple[str, ...]
) -> dict[str, Any]:
    """The incident a case asks for. Only what never changes for the case goes in (its id,
    anchor and owners, the rule, the incident type's capabilities), so a retry is the same
    request to dispatch's idempotency check and never a 422."""
    return {
        "type": request.incident_type,
        "priority": request.priority,
        "location": {"type": "Point", "coordinates": [request.lon, request.lat]},
        "required_capabilities": list(capabilities),
        "drones_needed": 1,
        "description": f"Escalated inspection case {case.id}: {scenario.name} ({scenario.code})",
        "shared_with": sorted(set(case.departments)),
    }


def next_wait_s(attempt: int, cap_s: float, retry_after: str | None = None) -> float:
    """Doubling from one second, at most cap_s; a Retry-After in seconds is honoured up to
    the cap."""
    wait: float = min(cap_s, FIRST_WAIT_S * 2.0 ** max(0, attempt - 1))
    if retry_after is not None and retry_after.strip().isdigit():
        wait = max(wait, min(cap_s, float(retry_after)))
    return wait


@dataclass
class Pending:
    case: Case
    scenario: ScenarioSpec
    attempt: int = 0
    due: float = 0.0


class CaseEscalator:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        producer: Producer,
        registry: TopicView,
        capabilities: Mapping[str, tuple[str, ...]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.dispatch_url or not settings.dispatch_key:
            raise ValueError("escalation needs AIRGRID_DISPATCH_URL and AIRGRID_DISPATCH_KEY")
        self.url = settings.dispatch_url.rstrip("/") + "/v1/incidents"
        self.key = settings.dispatch_key
        self.max_wait_s = settings.escalation_retry_max_s
        self.engine = engine
        self.producer = producer
        self.registry = registry
        self.capabilities = capabilities
        self.clock = clock
        self.pending: dict[str, Pending] = {}
        self.settled: OrderedDict[str, None] = OrderedDict()
        self.wake = asyncio.Event()

    def consider(self, case: Case, scenario: ScenarioSpec) -> None:
        """Queue the case when its rule asks for an incident; returns at once (no I/O)."""
        if case.id in self.pending or case.id in self.settled:
            return
        if escalation_for(case, scenario) is None:
            return
        self.pending[case.id] = Pending(case, scenario, due=self.clock())
        CASE_ESCALATIONS_PENDING.set(len(self.pending))
        self.wake.set()

    async def run(self) -> None:
        """Until cancelled: recover the pending work, then post each case when it is due."""
        await self.registry.caught_up.wait()  # the catalogue's rules, before the recovery
        await self._recover()
        async with httpx.AsyncClient(timeout=POST_TIMEOUT_S) as client:
            while True:
                due = self._next_due()
                if due is None:
                    await self._sleep(None)
                    continue
                wait = due.due - self.clock()
                if wait > 0:
                    await self._sleep(wait)
                    continue
                try:
                    await self._attempt(client, due)
                except Exception as error:  # never let one case stop the others
                    log.exception("case escalation failed", extra={"case_id": due.case.id})
                    self._retry(due, f"unexpected: {error!r}")
                CASE_ESCALATIONS_PENDING.set(len(self.pending))

    async def _sleep(self, seconds: float | None) -> None:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    def _next_due(self) -> Pending | None:
        return min(self.pending.values(), key=lambda p: p.due, default=None)

    async def _recover(self) -> None:
        """Queue every stored case whose rule asks for an incident: the work a stop left."""
        attempt = 0
        while True:
            scenarios = {c: s for c, s in catalogue(self.registry).items() if s.escalation}
            try:
                stored = await escalation_candidates(self.engine, list(scenarios))
                break
            except Exception:
                attempt += 1
                log.exception("escalation recovery could not read the cases; trying again")
                await asyncio.sleep(next_wait_s(attempt, self.max_wait_s))
        for code in scenarios:  # zeros rather than missing series
            for outcome in ESCALATION_OUTCOMES:
                CASE_ESCALATIONS.labels(code, outcome)
        CASE_ESCALATIONS_PENDING.set(len(self.pending))
        for case in stored:
            self.consider(case, scenarios[case.scenario])
        if self.pending:
            log.info("case escalations pending at start", extra={"cases": len(self.pending)})

    def _settle(self, case_id: str) -> None:
        self.pending.pop(case_id, None)
        self.settled[case_id] = None
        while len(self.settled) > SETTLED_KEPT:
            self.settled.popitem(last=False)

    def _retry(self, pending: Pending, reason: str, retry_after: str | None = None) -> None:
        pending.attempt += 1
        wait = next_wait_s(pending.attempt, self.max_wait_s, retry_after)
        pending.due = self.clock() + wait
        CASE_ESCALATIONS.labels(pending.scenario.code, "retried").inc()
        log.warning(
            "case escalation not taken; trying again",
            extra={
                "case_id": pending.case.id,
                "reason": reason,
                "attempt": pending.attempt,
                "wait_s": wait,
            },
        )

    async def _attempt(self, client: httpx.AsyncClient, pending: Pending) -> None:
        case_id = pending.case.id
        try:
            stored = await stored_cases(self.engine, [case_id])
        except Exception as error:
            self._retry(pending, f"case not read: {error!r}")
            return
        if stored:
            pending.case = stored[0]
        request = escalation_for(pending.case, pending.scenario)
        if request is None:  # closed, or escalated by hand, since it was queued
            self.pending.pop(case_id, None)
            return
        scenario = pending.scenario
        body = incident_body(
            request, pending.case, scenario, self.capabilities.get(request.incident_type, ())
        )
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Idempotency-Key": request.idempotency_key,
        }
        try:
            response = await client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as error:
            self._retry(pending, f"dispatch unreachable: {error!r}")
            return
        status = response.status_code
        if status >= 500 or status in RETRYABLE:
            self._retry(pending, f"dispatch answered {status}", response.headers.get("retry-after"))
            return
        if status not in (200, 201):
            self._settle(case_id)
            CASE_ESCALATIONS.labels(scenario.code, "refused").inc()
            log.error(
                "dispatch refused a case escalation",
                extra={"case_id": case_id, "status": status, "problem": response.text[:2000]},
            )
            return
        try:
            incident_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            self._retry(pending, f"dispatch answered {status} without an incident id")
            return
        replayed = response.headers.get("idempotent-replayed") == "true"
        CASE_ESCALATIONS.labels(scenario.code, "replayed" if replayed else "posted").inc()
        await self._escalate(pending, incident_id)

    async def _escalate(self, pending: Pending, incident_id: str) -> None:
        case_id = pending.case.id
        try:
            case = await take_action(
                engine=self.engine,
                producer=self.producer,
                principal=ESCALATOR,
                case_id=case_id,
                action=Action.ESCALATE,
                incident_id=incident_id,
            )
        except Problem as problem:
            if problem.kind == "transition-not-allowed" or problem.status == 404:
                self._settle(case_id)
                CASE_ESCALATIONS.labels(pending.scenario.code, "superseded").inc()
                log.warning(
                    "incident posted, but the case changed before it was escalated",
                    extra={"case_id": case_id, "incident_id": incident_id, "detail": problem},
                )
                return
            self._retry(pending, f"case not escalated: {problem.detail}")  # busy, unpublished
            return
        except Exception as error:
            self._retry(pending, f"case not escalated: {error!r}")
            return
        self._settle(case_id)
        log.info(
            "case escalated",
            extra={"case_id": case_id, "incident_id": incident_id, "version": case.version},
        )
