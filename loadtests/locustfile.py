"""Locust load for a running stack: departments post and follow incidents, operators read.

    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 5m \
        --host http://127.0.0.1:8003

Keys come from `.airgrid/credentials.json` (written by `airgrid up`), or AIRGRID_CREDENTIALS.
The registry and telemetry URLs default to the standard ports; set AIRGRID_REGISTRY_URL and
AIRGRID_TELEMETRY_URL otherwise. Nominal load is about 30 incidents per minute (SPEC §7 and
the simulator's default); 10x nominal is 5 incidents per second.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task

CREDENTIALS = Path(os.environ.get("AIRGRID_CREDENTIALS", ".airgrid/credentials.json"))
REGISTRY = os.environ.get("AIRGRID_REGISTRY_URL", "http://127.0.0.1:8001")
TELEMETRY = os.environ.get("AIRGRID_TELEMETRY_URL", "http://127.0.0.1:8002")
# The reference zone's extent (Optics Valley, synthetic): incidents land inside it.
LON, LAT = (114.33, 114.55), (30.42, 30.54)
TYPES = {"fire": "fire", "traffic": "traffic_accident", "health": "medical_aed"}


def load_keys() -> dict[str, Any]:
    if not CREDENTIALS.exists():
        raise SystemExit(f"{CREDENTIALS} not found: run `airgrid up` or set AIRGRID_CREDENTIALS")
    keys: dict[str, Any] = json.loads(CREDENTIALS.read_text())
    return keys


KEYS = load_keys()


def incident_body(department: str) -> dict[str, Any]:
    return {
        "type": TYPES.get(department, "fire"),
        "priority": random.choice([1, 2, 2, 3, 3, 4]),
        "location": {
            "type": "Point",
            "coordinates": [random.uniform(*LON), random.uniform(*LAT)],
        },
        "required_capabilities": [],
        "drones_needed": 1,
        "on_scene_seconds": 300,
        "description": "locust load",
    }


class Department(HttpUser):
    """A department's dispatcher: reports incidents and follows its own."""

    weight = 3
    wait_time = between(1, 3)

    def on_start(self) -> None:
        departments = [d for d in KEYS["department"] if d in TYPES] or list(KEYS["department"])
        self.department = random.choice(departments)
        self.auth = {"Authorization": f"Bearer {KEYS['department'][self.department]}"}
        self.mine: list[str] = []

    @task(2)
    def report(self) -> None:
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        with self.client.post(
            "/v1/incidents",
            json=incident_body(self.department),
            headers=headers,
            name="POST /v1/incidents",
            catch_response=True,
        ) as r:
            if r.status_code == 201:
                self.mine.append(r.json()["id"])
                r.success()
            else:
                r.failure(f"{r.status_code} {r.text[:200]}")

    @task(5)
    def follow(self) -> None:
        if self.mine:
            incident_id = random.choice(self.mine[-20:])
            self.client.get(
                f"/v1/incidents/{incident_id}", headers=self.auth, name="GET /v1/incidents/{id}"
            )

    @task(1)
    def list_own(self) -> None:
        self.client.get("/v1/incidents?limit=20", headers=self.auth, name="GET /v1/incidents")


class Operator(HttpUser):
    """An operator's console: incidents, missions, coverage, fleet state, drones."""

    weight = 1
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {KEYS['operator']}"}

    @task(3)
    def incidents(self) -> None:
        self.client.get("/v1/incidents?limit=50", headers=self.auth, name="GET /v1/incidents")

    @task(3)
    def missions(self) -> None:
        self.client.get("/v1/missions?limit=50", headers=self.auth, name="GET /v1/missions")

    @task(1)
    def coverage(self) -> None:
        self.client.get("/v1/coverage", headers=self.auth, name="GET /v1/coverage")

    @task(2)
    def fleet(self) -> None:
        self.client.get(
            f"{TELEMETRY}/v1/drones/states", headers=self.auth, name="GET telemetry states"
        )

    @task(1)
    def drones(self) -> None:
        self.client.get(
            f"{REGISTRY}/v1/drones?limit=50", headers=self.auth, name="GET registry drones"
        )
