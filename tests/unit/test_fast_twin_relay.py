"""The twin's fleet flies a relay chain as the core orders it: an hour-long fire gets a drone
within the SLA, the drone holds only as long as its order says, a relief reaches the scene
before the first drone must turn home, and the first drone lands with its reserve. The
accelerated twin flies the same physics (airgrid/sim/physics.py) and command handling as the
live twin of `make run`, on a simulated clock."""

from __future__ import annotations

from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.sim.incidents import GeneratedIncident
from airgrid.sim.load import ScheduledIncident
from airgrid.sim.physics import DOCKED
from entrypoints.fast_twin.clock_loop import FastRequest, FastTwin
from services.dispatch.domain.model import Assigned, Decision, MissionStage, StageReached

RESERVE_PCT = 20.0


def test_the_twin_flies_a_relay_of_an_hour_long_fire_and_lands_the_first_drone_with_reserve() -> (
    None
):
    reference = load_reference()
    settings = Settings(
        log_format="console",
        patrol_enabled=False,
        rebalance_enabled=False,
        battery_reserve_pct=RESERVE_PCT,
    )
    twin = FastTwin(reference, settings, FastRequest(rate_per_min=0.0, load_s=1.0, step_s=2.0))
    seen: list[Decision] = []
    decide = twin._decide

    def record(decisions: list[Decision]) -> None:
        seen.extend(decisions)
        decide(decisions)

    twin._decide = record  # type: ignore[method-assign]
    twin._step(0.0)
    nest = next(n for n in reference.nests if any(d.home_nest == n.id for d in reference.drones))
    body = {
        "type": "fire",
        "priority": 1,
        "location": {"type": "Point", "coordinates": [nest.lon + 0.004, nest.lat + 0.002]},
        "required_capabilities": [],
        "drones_needed": 1,
        "on_scene_seconds": 3600,
        "description": "warehouse fire, an hour of overwatch",
    }
    twin._post(ScheduledIncident(0.0, GeneratedIncident("fire", body)), twin.now_ms)
    first = next(d for d in seen if isinstance(d, Assigned)).assignments[0]
    assert first.eta_seconds < settings.sla_seconds
    holder = twin.fleet.drones[first.drone_id]
    handed_over: StageReached | None = None
    landed_pct: float | None = None
    while landed_pct is None and twin.now_ms - twin.run.started_ms < 4_000_000:
        twin._step(2.0)
        if handed_over is None:
            handed_over = next(
                (
                    d
                    for d in seen
                    if isinstance(d, StageReached)
                    and d.mission_id == first.mission_id
                    and d.stage == MissionStage.RETURNING
                ),
                None,
            )
            if handed_over is not None:
                assert holder.battery_pct > RESERVE_PCT
        elif holder.mode == DOCKED:
            landed_pct = holder.battery_pct
    assert handed_over is not None, "the first drone was never relieved"
    assert handed_over.reason.startswith("relieved on scene by mission")
    relief = next(
        a
        for d in seen
        if isinstance(d, Assigned)
        for a in d.assignments
        if a.relieves == first.mission_id
    )
    assert handed_over.reason == f"relieved on scene by mission {relief.mission_id}"
    assert landed_pct is not None and landed_pct >= RESERVE_PCT - 0.5, landed_pct
