"""Departments posting incidents through the whole fault run, and their outcomes afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

OUTCOMES = {"queued", "assigned", "launched", "on_scene", "completed", "cancelled"}
DEPARTMENTS = ("fire", "police", "health", "traffic")


@dataclass
class IncidentLoad:
    """What the load saw: accepted incident ids and HTTP answers, by phase."""

    accepted: list[str] = field(default_factory=list)
    phase_of: dict[str, str] = field(default_factory=dict)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    phase: str = "start"

    def codes(self, phase: str) -> Counter[int]:
        return Counter({code: n for (p, code), n in self.answers.items() if p == phase})

    async def post(self, url: str, keys: dict[str, str], rate: float) -> None:
        """Posts at `rate` per second until cancelled; code 0 counts a transport error."""
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            n = 0
            while True:
                department = DEPARTMENTS[n % len(DEPARTMENTS)]
                n += 1
                body: dict[str, Any] = {
                    "type": "fire" if department == "fire" else "medical_aed",
                    "priority": 1 + n % 4,
                    "location": {"type": "Point", "coordinates": [114.40 + (n % 7) * 0.01, 30.48]},
                    "required_capabilities": [],
                    "drones_needed": 1,
                    "on_scene_seconds": 60,
                    "description": f"chaos load {n}",
                }
                headers = {
                    "Authorization": f"Bearer {keys[department]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                phase = self.phase
                try:
                    r = await client.post("/v1/incidents", json=body, headers=headers)
                    self.answers[(phase, r.status_code)] += 1
                    if r.status_code == 201:
                        incident_id = r.json()["id"]
                        self.accepted.append(incident_id)
                        self.phase_of[incident_id] = phase
                except httpx.HTTPError:
                    self.answers[(phase, 0)] += 1
                await asyncio.sleep(1 / rate)


async def incident_outcomes(
    url: str, operator_key: str, ids: list[str], timeout: float
) -> dict[str, str]:
    """Each incident's status once it is an outcome, polled until all are or `timeout`."""
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {operator_key}"}
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
        while time.monotonic() < deadline:
            for incident_id in ids:
                if statuses.get(incident_id) in OUTCOMES:
                    continue
                try:
                    r = await client.get(f"/v1/incidents/{incident_id}")
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    statuses[incident_id] = r.json()["status"]
            if all(statuses.get(i) in OUTCOMES for i in ids):
                break
            await asyncio.sleep(1)
    return statuses
