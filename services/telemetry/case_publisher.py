"""The one way a case change leaves the service: a CaseEvent on airgrid.cases and a feed item
(case.opened, case.updated) on each owner department's feed, both with the event id
`<case id>:<version>` as ce_id, so a republished change is dropped as a repeat downstream.
The case keeper (merges) and case transitions (REST) both publish through it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from airgrid.bus import Producer
from airgrid.topics import CASES, feed_topic
from airgrid.v1 import inspection_pb2
from services.telemetry.domain.cases import Case
from services.telemetry.feed_routing import (
    CASE_OPENED_ITEM,
    CASE_UPDATED_ITEM,
    case_departments,
    case_item,
)

CASE_EVENT = "airgrid.case"

_STATUS = {
    "open": inspection_pb2.CASE_STATUS_OPEN,
    "acknowledged": inspection_pb2.CASE_STATUS_ACKNOWLEDGED,
    "resolved": inspection_pb2.CASE_STATUS_RESOLVED,
    "dismissed": inspection_pb2.CASE_STATUS_DISMISSED,
    "escalated": inspection_pb2.CASE_STATUS_ESCALATED,
}


@dataclass(frozen=True)
class CaseChange:
    case: Case
    opened: bool = False
    detection_id: str = ""
    """The detection that opened or joined the case; empty for a status change."""
    action: str = ""
    """The action that changed the status; empty for a merge."""
    actor: str = ""
    """The credential that took the action; empty for a merge."""


def case_message(case: Case) -> inspection_pb2.Case:
    return inspection_pb2.Case(
        id=case.id,
        scenario=case.scenario,
        departments=list(case.departments),
        status=_STATUS[case.status.value],
        lon=case.lon,
        lat=case.lat,
        first_seen_ms=case.first_seen_ms,
        last_seen_ms=case.last_seen_ms,
        detection_count=case.count,
        best_media=inspection_pb2.MediaRef(uri=case.best_media_uri, sha256=case.best_media_sha256),
        best_confidence=case.best_confidence,
        best_detection_id=case.best_detection_id,
        incident_id=case.incident_id,
        version=case.version,
    )


async def publish_case_changes(
    producer: Producer, changes: Sequence[CaseChange], *, now_ms: int
) -> None:
    """Send every change to airgrid.cases and its owners' feeds; returns once the broker has
    acknowledged them all (raises when it did not)."""
    futures = []
    for change in changes:
        case = change.case
        event_id = f"{case.id}:{case.version}"
        kind = (
            inspection_pb2.CASE_CHANGE_KIND_OPENED
            if change.opened
            else inspection_pb2.CASE_CHANGE_KIND_UPDATED
        )
        event = inspection_pb2.CaseEvent(
            event_id=event_id,
            kind=kind,
            case=case_message(case),
            detection_id=change.detection_id,
            actor=change.actor,
            event_time_ms=now_ms,
        )
        futures.append(
            await producer.send(
                CASES, event.SerializeToString(), key=case.id, ce_type=CASE_EVENT, ce_id=event_id
            )
        )
        item_type = CASE_OPENED_ITEM if change.opened else CASE_UPDATED_ITEM
        item = case_item(
            case,
            opened=change.opened,
            detection_id=change.detection_id,
            action=change.action,
            time_ms=now_ms,
        )
        for code in case_departments(case):
            futures.append(
                await producer.send(
                    feed_topic(code),
                    item,
                    key=case.id,
                    ce_type=f"airgrid.feed.{item_type}",
                    ce_id=event_id,
                )
            )
    await asyncio.gather(*futures)
