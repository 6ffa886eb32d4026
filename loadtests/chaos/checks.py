"""The checks of a fault run after each fault and at the end: what the dispatch log on Kafka
shows, drones or slots holding two active missions in the database, every injected alert
condition alerted, and how long the services take to serve again."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import text

from airgrid.config import Settings
from airgrid.db import create_engine
from airgrid.service_processes import Readiness, ServiceProcesses
from loadtests.chaos.alert_rule import AlertVerdict, Condition, judge
from loadtests.chaos.alert_watch import AlertWatch
from loadtests.chaos.dispatch_log import double_assignments, drones_twice, read_dispatch_log
from loadtests.chaos.fleet import ChaosFleet
from loadtests.chaos.probes import dispatch_decides, telemetry_applies


@dataclass
class LogChecks:
    """What the decisions and mission events read back from Kafka show."""

    decisions: int
    slots_twice: list[str]
    drones_twice: list[str]
    stages: Counter[str]


async def log_checks(settings: Settings) -> LogChecks:
    """The "no drone twice" check on what dispatch published, deduplicated on ce_id."""
    from airgrid.v1 import mission_pb2

    log = await read_dispatch_log(settings)
    decisions, events = log.decisions, log.mission_events
    return LogChecks(
        decisions=len(decisions),
        slots_twice=double_assignments(decisions),
        drones_twice=drones_twice(decisions, events),
        stages=Counter(
            mission_pb2.MissionStage.Name(e.stage).removeprefix("MISSION_STAGE_").lower()
            for e in events
        ),
    )


async def double_missions(settings: Settings) -> tuple[int, int]:
    """(drones holding two active missions, incident slots with two active missions)."""
    active = "stage IN ('assigned', 'launched', 'on_scene')"
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            drones = await conn.execute(
                text(
                    f"SELECT drone_id FROM missions WHERE {active} "
                    "GROUP BY drone_id HAVING count(*) > 1"
                )
            )
            slots = await conn.execute(
                text(
                    f"SELECT incident_id, slot FROM missions WHERE {active} "
                    "GROUP BY incident_id, slot HAVING count(*) > 1"
                )
            )
            return len(drones.all()), len(slots.all())
    finally:
        await engine.dispose()


async def alerts_seen(
    watch: AlertWatch, conditions: list[Condition], timeout: float
) -> AlertVerdict:
    """Waits (bounded) until every condition so far has its alert; the verdict either way."""
    deadline = time.monotonic() + timeout
    while True:
        verdict = judge(conditions, list(watch.alerts.values()))
        if verdict.ok or time.monotonic() > deadline:
            return verdict
        await asyncio.sleep(1.0)


async def recovery(
    stack: ServiceProcesses,
    keys: dict[str, str],
    fleet: ChaosFleet,
    services: tuple[str, ...],
    timeout: float,
) -> list[Readiness]:
    """Measured together from now: /readyz of `services`, then dispatch deciding an incident
    posted now and telemetry applying a record sent now."""
    return list(
        await asyncio.gather(
            *(stack.ready(service, timeout) for service in services),
            dispatch_decides(stack.url("dispatch"), keys["fire"], keys["operator"], timeout),
            telemetry_applies(
                stack.url("telemetry"), keys["operator"], fleet.control_drone, timeout
            ),
        )
    )
