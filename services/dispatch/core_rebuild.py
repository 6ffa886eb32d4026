"""The dispatch core rebuilt from the database: its live incidents and active missions
restored, every waiting incident reported, and incidents whose record never reached the
worker taken from the database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import store
from services.dispatch.core_feed import now_ms, request_of_row
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import Decision, Mission, MissionStage, Queued

log = logging.getLogger("airgrid.dispatch")


async def restore_from_database(
    core: DispatchCore, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Give an empty core the database's open work: live incidents, active missions (a
    relief with the mission it relieves), mission counts, links, flown slots, the SLA alerts
    raised already and when each incident's first drone reached the scene."""
    async with sessions() as session:
        incidents = await store.open_incidents(session)
        missions = await store.active_missions(session)
        attempts = await store.mission_counts(session)
        links = await store.open_links(session)
        flown = await store.flown_slots(session)
        alerted = await store.raised_sla_alerts(session)
        arrivals = await store.scene_arrivals(session)
    core.restore(
        incidents=[request_of_row(row) for row in incidents],
        missions=[
            Mission(
                m.id,
                m.incident_id,
                m.drone_id,
                m.slot,
                MissionStage(m.stage),
                m.eta_seconds,
                int(m.created_at.timestamp() * 1000),
                relieves=m.relieves or "",
            )
            # All of them, also those of incidents no longer live: they hold their
            # drones in the database; end_orphans (after the feed) closes them.
            for m in missions
        ],
        attempts=attempts,
        links=links,
        done_slots=flown,
        alerted=alerted,
        scene_since_ms=arrivals,
    )
    live = {i.id for i in incidents}
    orphans = sum(1 for m in missions if m.incident_id not in live)
    log.info(
        "dispatch core restored",
        extra={
            "open_incidents": len(incidents),
            "active_missions": len(missions),
            "missions_of_closed_incidents": orphans,
        },
    )


def end_orphans(core: DispatchCore) -> list[Decision]:
    """End the missions the database keeps active for incidents that are closed (a cancel
    that raced their assignment, a worker stopped before it heard the cancel). Left out,
    their drones would look free and every assignment of one would be refused, rebuild
    after rebuild, so the worker would never become ready."""
    return core.end_orphans("its incident is closed", now_ms())


def with_waiting(core: DispatchCore, decisions: list[Decision]) -> list[Decision]:
    """The decisions of a rebuild, then the queue tried, then every waiting incident
    reported as queued with its reason."""
    decisions = [*decisions, *core.drain_queue()]
    for entry in core.queued_incidents():
        if not entry.request.patrol_route:
            reason = entry.reason or "waiting for a drone"
            decisions.append(Queued(entry.request.id, tuple(sorted(entry.open_slots)), reason))
    return decisions


async def decide_missed(
    core: DispatchCore, sessions: async_sessionmaker[AsyncSession], *, older_than_s: float
) -> list[Decision]:
    """Incidents committed more than older_than_s ago that still have no decision and that
    the core has never seen: their record did not reach this worker (an empty broker can
    lose a record after acknowledging it), so they are taken from the database, as at a
    restart. One whose record arrives later is a replay the core ignores."""
    before = datetime.now(UTC) - timedelta(seconds=older_than_s)
    async with sessions() as session:
        rows = await store.undecided_incidents(session, accepted_before=before)
    missed = [row for row in rows if row.id not in core.seen_incidents]
    if not missed:
        return []
    log.warning(
        "incidents without a decision whose record never arrived; deciding them now",
        extra={"incidents": len(missed), "first": missed[0].id},
    )
    decisions: list[Decision] = []
    for row in missed:
        decisions += core.accept(request_of_row(row), now_ms())
    return decisions
