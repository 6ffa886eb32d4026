"""Which drones a gateway may report: those the registry places at its nest (home nest, or
the nest its accepted state last docked at). Telemetry batches and detection batches are
refused whole, with 403, when they name any other."""

from __future__ import annotations

from collections.abc import Sequence

from airgrid.auth import Principal, Role
from airgrid.bus import TopicView
from airgrid.problems import Problem
from airgrid.v1 import drone_state_pb2, inspection_pb2, registry_pb2, telemetry_pb2


def check_gateway_scope(
    principal: Principal,
    records: Sequence[telemetry_pb2.Telemetry | inspection_pb2.Detection],
    registry: TopicView,
    states: TopicView,
) -> None:
    """403 for a gateway bound to no nest, or one naming a drone it may not report."""
    if principal.role is not Role.GATEWAY:
        return
    if not principal.nest_id:
        raise Problem(
            403,
            "Forbidden",
            "This gateway credential is bound to no nest, so it may report no drone; ask an "
            "admin for one with a nest_id.",
            kind="forbidden",
        )
    foreign = foreign_drones(principal, records, registry, states)
    if foreign:
        raise Problem(
            403,
            "Forbidden",
            f"Gateway of nest {principal.nest_id} may report only drones the registry places "
            f"at its nest (home or current nest), not: {', '.join(foreign)}.",
            kind="forbidden",
        )


def foreign_drones(
    principal: Principal,
    records: Sequence[telemetry_pb2.Telemetry | inspection_pb2.Detection],
    registry: TopicView,
    states: TopicView,
) -> list[str]:
    """Drones a gateway may not report: neither registered to its nest nor last seen docked
    there (the accepted state's nest). What a record claims about its own nest is never
    trusted. Unknown drones are the stream's to reject."""
    if principal.role is not Role.GATEWAY:
        return []
    foreign: set[str] = set()
    for record in records:
        change: registry_pb2.RegistryChange | None = registry.items.get(record.drone_id)
        if change is None or not change.HasField("drone"):
            continue
        if change.drone.home_nest == principal.nest_id:
            continue
        state: drone_state_pb2.DroneState | None = states.items.get(record.drone_id)
        if state is None or state.nest_id != principal.nest_id:
            foreign.add(record.drone_id)
    return sorted(foreign)
