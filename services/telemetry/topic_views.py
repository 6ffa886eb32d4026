"""The topic views the telemetry service reads: the registry (drones, no-fly zones), the live
drone states and the drone commands (the commanded paths of the off-route rule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airgrid.bus import TopicView
from airgrid.config import Settings
from airgrid.topics import DRONE_COMMANDS, DRONE_STATE, REGISTRY_CHANGES
from airgrid.v1 import command_pb2, drone_state_pb2, registry_pb2
from services.telemetry.domain.anomalies import NoFlyZone


def is_drone(change: Any) -> bool:
    """A registry change that leaves a registered drone under its key."""
    return change is not None and change.HasField("drone") and not change.deleted


def registry_view(
    settings: Settings, on_update: Callable[[str, Any], None] | None = None
) -> TopicView:
    decode = registry_pb2.RegistryChange.FromString
    return TopicView(settings, REGISTRY_CHANGES, decode, on_update=on_update)


def state_view(settings: Settings) -> TopicView:
    return TopicView(settings, DRONE_STATE, drone_state_pb2.DroneState.FromString)


def command_view(
    settings: Settings, on_update: Callable[[str, Any], None] | None = None
) -> TopicView:
    return TopicView(
        settings, DRONE_COMMANDS, command_pb2.DroneCommand.FromString, on_update=on_update
    )


def no_fly_zones(registry: TopicView) -> list[NoFlyZone]:
    """Active-window no-fly and temporary geofences currently in the registry view."""
    zones = []
    for change in list(registry.items.values()):
        if change is None or change.deleted or not change.HasField("geofence"):
            continue
        fence = change.geofence
        if fence.kind not in ("no-fly", "temporary") or len(fence.ring_lon) < 3:
            continue
        ring = list(zip(fence.ring_lon, fence.ring_lat, strict=False))
        zones.append(NoFlyZone(fence.id, ring, fence.active_from_ms, fence.active_until_ms))
    return zones


def commanded_path(command: Any) -> list[tuple[float, float]]:
    """The path a drone command sets (lon, lat per point): its own path, else the target of a
    launch or goto; none after a return, or when the command was deleted."""
    if command is None:
        return []
    path = list(zip(command.path_lon, command.path_lat, strict=False))
    if not path and command.kind in (
        command_pb2.COMMAND_KIND_LAUNCH,
        command_pb2.COMMAND_KIND_GOTO,
    ):
        path = [(command.target_lon, command.target_lat)]
    if command.kind == command_pb2.COMMAND_KIND_RETURN:
        path = []
    return path
