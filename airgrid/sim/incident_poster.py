"""The twin's incident load: each scheduled incident posted to the dispatch service at its
offset with its department's credential, once the services know the fleet. Each post runs on
its own; a refused or failed post is counted and logged, never retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import httpx

from airgrid.bus import now_ms
from airgrid.sim.incidents import GeneratedIncident
from airgrid.sim.load import LoadModel
from airgrid.sim.outcomes import Outcomes
from airgrid.sim.sim_stats import SimStats

log = logging.getLogger("airgrid.sim")

HTTP_TIMEOUT_S = 10.0
# Most seconds the incident load waits for the fleet's first reports to reach the services,
# and how often it asks the telemetry service meanwhile.
FLEET_REPORT_WAIT_S = 5.0
FLEET_POLL_S = 0.1


async def incident_loop(
    load: LoadModel,
    url: str,
    keys: dict[str, str],
    load_s: float | None,
    stats: SimStats,
    stop: asyncio.Event,
    outcomes: Outcomes | None,
    fleet_known: Coroutine[Any, Any, None] | None = None,
) -> None:
    """Post each scheduled incident at its offset, counted from the moment the services know
    every drone (`fleet_known` returns, or FLEET_REPORT_WAIT_S passed); each post runs on its
    own so a slow one never holds back the schedule."""
    in_flight: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    if fleet_known is not None:
        try:
            await asyncio.wait_for(fleet_known, FLEET_REPORT_WAIT_S)
        except TimeoutError:
            log.warning(
                "the services do not know every drone yet; posting incidents anyway",
                extra={"waited_s": FLEET_REPORT_WAIT_S},
            )
    began = loop.time()
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        try:
            for scheduled in load.events():
                if load_s is not None and scheduled.offset_s >= load_s:
                    break
                wait = began + scheduled.offset_s - loop.time()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    break
                task = asyncio.create_task(
                    _post(client, url, keys, scheduled.incident, stats, outcomes)
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            stats.loading = False
            await asyncio.gather(*in_flight, return_exceptions=True)
            await stop.wait()
        finally:
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)


async def fleet_known(
    reported: asyncio.Event, states_url: str, key: str, *, drones: int, seq_base: int
) -> None:
    """Returns once every drone has reported and the telemetry service's state view holds a
    report of this run (seq above seq_base) from each. The dispatch worker reads the same
    state topic, so it then knows the fleet too: an incident decided before that goes for
    good to the best drone dispatch has heard of so far, which at start-up may be a far one."""
    await reported.wait()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                response = await client.get(states_url, headers=headers)
                if response.status_code == 200:
                    known = response.json()["drones"]
                    if sum(1 for d in known if int(d["last_seq"]) > seq_base) >= drones:
                        return
            await asyncio.sleep(FLEET_POLL_S)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    keys: dict[str, str],
    incident: GeneratedIncident,
    stats: SimStats,
    outcomes: Outcomes | None = None,
) -> None:
    stats.incidents_posted += 1
    stats.recent_posts.append(time.monotonic())
    context = {
        "department": incident.department,
        "type": incident.body["type"],
        "priority": incident.body["priority"],
    }
    key = keys.get(incident.department)
    if key is None:
        stats.incidents_failed += 1
        log.warning("no credential for the department; incident not posted", extra=context)
        return
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": str(uuid.uuid4())}
    started = time.perf_counter()
    try:
        response = await client.post(url, json=incident.body, headers=headers)
    except httpx.HTTPError as error:
        stats.incidents_failed += 1
        log.warning("incident post failed", extra={**context, "error": repr(error)})
        return
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if response.status_code in (200, 201):
        stats.incidents_accepted += 1
        incident_id = _incident_id(response)
        if outcomes is not None and incident_id:
            outcomes.on_posted(
                incident_id,
                department=incident.department,
                priority=int(incident.body["priority"]),
                type=str(incident.body["type"]),
                at_ms=now_ms(),
            )
        log.info(
            "incident posted",
            extra={**context, "incident_id": incident_id, "elapsed_ms": elapsed_ms},
        )
        return
    stats.incidents_failed += 1
    log.warning(
        "incident refused",
        extra={**context, "status": response.status_code, "detail": response.text[:300]},
    )


def _incident_id(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(response.json().get("id", ""))
    return ""
