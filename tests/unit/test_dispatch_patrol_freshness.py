"""Dispatch's freshness view for its patrols: plans from registry changes, sightings from the
drone states it consumes, overdue cells handed to the core as plain data."""

from __future__ import annotations

from airgrid.config import Settings
from airgrid.reference import load_reference
from airgrid.v1 import drone_state_pb2, registry_pb2, telemetry_pb2
from services.dispatch.domain.fresh_sorties import NEVER_SEEN
from services.dispatch.patrol_freshness import PatrolFreshness

REFERENCE = load_reference(None)
NOW = 1_780_000_000_000


def plan_change(lon: float, lat: float, half: float = 0.004) -> registry_pb2.RegistryChange:
    plan = registry_pb2.InspectionPlan(
        id="p1", department="fire", kind="area", revisit_interval_s=1200,
        ring_lon=[lon - half, lon + half, lon + half, lon - half, lon - half],
        ring_lat=[lat - half, lat - half, lat + half, lat + half, lat - half],
    )  # fmt: skip
    return registry_pb2.RegistryChange(entity_id="inspection-plan:p1", inspection_plan=plan)


def state(
    lon: float, lat: float, alt_m: float, mode: telemetry_pb2.FlightMode, at_ms: int
) -> drone_state_pb2.DroneState:
    return drone_state_pb2.DroneState(
        drone_id=REFERENCE.drones[0].id, lon=lon, lat=lat, alt_m=alt_m, flight_mode=mode,
        event_time_ms=at_ms, link_ok=True,
    )  # fmt: skip


def test_the_view_holds_overdue_plan_cells_and_drone_states_make_them_fresh() -> None:
    keeper = PatrolFreshness(REFERENCE, Settings())
    lon, lat = REFERENCE.zone.centre
    assert not keeper.view(NOW).planned  # no plan yet: the core keeps its lawn-mower routes
    keeper.on_registry_change("inspection-plan:p1", plan_change(lon, lat))
    view = keeper.view(NOW)
    assert view.planned and view.cells
    assert all(c.reference_ms == NEVER_SEEN and c.interval_s == 1200 for c in view.cells)
    cell = view.cells[0]
    cruising = telemetry_pb2.FLIGHT_MODE_CRUISING
    # Docked, or above inspection altitude, a state sees nothing.
    keeper.observe(state(cell.lon, cell.lat, 120.0, telemetry_pb2.FLIGHT_MODE_DOCKED, NOW))
    keeper.observe(state(cell.lon, cell.lat, 400.0, cruising, NOW))
    assert cell.cell in {c.cell for c in keeper.view(NOW).cells}
    keeper.observe(state(cell.lon, cell.lat, 120.0, cruising, NOW - 60_000))
    assert cell.cell not in {c.cell for c in keeper.view(NOW).cells}
    # Past its interval it is overdue again, with the sighting as its reference.
    [again] = [c for c in keeper.view(NOW + 1_200_000).cells if c.cell == cell.cell]
    assert again.reference_ms == NOW - 60_000
    # The plan deleted: still planned-for only while some plan is known.
    keeper.on_registry_change("inspection-plan:p1", None)
    assert not keeper.view(NOW).planned
