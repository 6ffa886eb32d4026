"""Recovery beyond /readyz: the time until a service does its work again after a fault.

- dispatch: an incident posted after the fault gets a decision (any status but `accepted`);
- telemetry: a chaos drone's record sent after the fault is in the drone's live state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

import httpx

from airgrid.service_processes import Readiness


async def dispatch_decides(
    url: str, department_key: str, operator_key: str, timeout: float
) -> Readiness:
    started = time.monotonic()
    last = "no answer"
    incident_id: str | None = None
    body = {
        "type": "fire",
        "priority": 1,
        "location": {"type": "Point", "coordinates": [114.43, 30.49]},
        "required_capabilities": [],
        "drones_needed": 1,
        "on_scene_seconds": 60,
        "description": "chaos recovery probe",
    }
    idempotency_key = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while time.monotonic() - started < timeout:
            try:
                if incident_id is None:
                    r = await client.post(
                        "/v1/incidents",
                        json=body,
                        headers={
                            "Authorization": f"Bearer {department_key}",
                            "Idempotency-Key": idempotency_key,
                        },
                    )
                    if r.status_code == 201:
                        incident_id = r.json()["id"]
                    last = f"POST {r.status_code}"
                else:
                    r = await client.get(
                        f"/v1/incidents/{incident_id}",
                        headers={"Authorization": f"Bearer {operator_key}"},
                    )
                    status = r.json().get("status") if r.status_code == 200 else None
                    if status not in (None, "accepted"):
                        return Readiness("dispatch decisions", time.monotonic() - started)
                    last = f"probe incident {incident_id} still {status or r.status_code}"
            except (httpx.HTTPError, ValueError) as error:
                last = repr(error)
            await asyncio.sleep(0.5)
    return Readiness("dispatch decisions", None, last)


async def telemetry_applies(
    url: str, operator_key: str, drone_id: str, timeout: float
) -> Readiness:
    """Waits for a state of `drone_id` with an event time after the call."""
    started = time.monotonic()
    since = datetime.now().astimezone()
    last = "no answer"
    headers = {"Authorization": f"Bearer {operator_key}"}
    async with httpx.AsyncClient(base_url=url, timeout=5, headers=headers) as client:
        while time.monotonic() - started < timeout:
            try:
                r = await client.get(f"/v1/drones/{drone_id}/state")
                if r.status_code == 200:
                    event_time = datetime.fromisoformat(r.json()["event_time"])
                    if event_time > since:
                        return Readiness("telemetry state", time.monotonic() - started)
                    last = f"state of {drone_id} from {event_time.isoformat()}"
                else:
                    last = f"GET state {r.status_code}"
            except (httpx.HTTPError, ValueError, KeyError) as error:
                last = repr(error)
            await asyncio.sleep(0.5)
    return Readiness("telemetry state", None, last)
