"""A dispatch core rebuilt mid-chain (as the worker rebuilds it from the database after a
restart) carries the relay chain on: the relief on its way still hands over on arrival, and
the chain's end is counted from the first arrival, not from the restart."""

from __future__ import annotations

from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.core_state import CoreSettings
from services.dispatch.domain.model import Mission, MissionStage, StageReached
from tests.unit.test_dispatch_properties_relay import NEST, RESERVE_PCT, Sim, fire, fleet


def _restored(sim: Sim) -> DispatchCore:
    """A new core given what the database keeps: the live incidents, the active missions
    (each relief with the mission it relieves), mission counts and first arrivals."""
    old = sim.core
    core = DispatchCore(settings=CoreSettings(reserve_pct=RESERVE_PCT))
    core.upsert_nest(NEST)
    core.restore(
        incidents=[e.request for e in old.incidents.values()],
        missions=[stored_copy(m) for m in old.missions.values()],
        attempts={i: e.attempts for i, e in old.incidents.items()},
        scene_since_ms={i: e.scene_since_ms for i, e in old.incidents.items()},
    )
    for d in sorted(sim.drones.values(), key=lambda d: d.view.id):
        core.upsert_drone(d.view, now_ms=sim.now)
    return core


def stored_copy(m: Mission) -> Mission:
    """A copy of a mission, as a row of the missions table gives it back."""
    return Mission(
        m.id, m.incident_id, m.drone_id, m.slot, m.stage, m.eta_seconds, m.assigned_ms,
        relieves=m.relieves,
    )  # fmt: skip


def _relief_on_its_way(sim: Sim) -> Mission | None:
    return next(
        (
            m
            for m in sim.core.missions.values()
            if m.relieves and m.stage in (MissionStage.ASSIGNED, MissionStage.LAUNCHED)
        ),
        None,
    )


def test_a_chain_restored_while_its_relief_flies_still_hands_over() -> None:
    sim = Sim(fleet([100.0, 100.0, 100.0], 1800.0))
    sim.accept(fire(1, x=1500.0, y=0.0, on_scene_s=3600))
    while (relief := _relief_on_its_way(sim)) is None:
        sim.step()
        assert sim.now < 3_600_000, "no relief was planned"
    since = sim.core.incidents["fire-1"].scene_since_ms
    assert since > 0
    sim.core = _restored(sim)
    assert sim.core.incidents["fire-1"].scene_since_ms == since
    assert sim.core.missions[relief.id].relieves == relief.relieves
    handed_over = None
    while handed_over is None and sim.now < since + 3_600_000:
        before = len(sim.log)
        sim.step()
        handed_over = next(
            (
                d
                for _, d in sim.log[before:]
                if isinstance(d, StageReached) and d.mission_id == relief.relieves
            ),
            None,
        )
    assert handed_over is not None
    assert handed_over.stage == MissionStage.RETURNING
    assert handed_over.reason == f"relieved on scene by mission {relief.id}"


def test_a_restored_relief_whose_holder_is_gone_holds_the_slot() -> None:
    """The drone on scene failed while its relief flies: the relief holds the chain's slot
    (its own number is the base plus drones_needed), so a restore neither opens the base
    slot again (a second drone for one place) nor keeps a link to a mission that is gone."""
    sim = Sim(fleet([100.0, 100.0, 100.0], 1800.0))
    sim.accept(fire(1, x=1500.0, y=0.0, on_scene_s=3600))
    while (relief := _relief_on_its_way(sim)) is None:
        sim.step()
        assert sim.now < 3_600_000, "no relief was planned"
    assert relief.slot == 1
    del sim.core.missions[relief.relieves]  # the database keeps the failed one inactive
    core = _restored(sim)
    assert core.missions[relief.id].relieves == ""
    assert not core.incidents["fire-1"].open_slots
    assert [m.id for m in core.missions.values()] == [relief.id]
