"""Anomaly rules with hysteresis: accepted records and event time in, alert transitions out."""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from airgrid.geo import haversine_m
from airgrid.nofly import NoFlyZone as NoFlyZone  # also importable from here

# Battery must climb this far above the threshold before a low-battery alert clears.
BATTERY_CLEAR_MARGIN_PCT = 5.0
# A drone back on route must be this fraction of the off-route distance from the path to clear.
OFF_ROUTE_CLEAR_FRACTION = 0.5


class AlertKind(enum.StrEnum):
    LOW_BATTERY = "low_battery"
    LINK_LOST = "link_lost"
    GEOFENCE_BREACH = "geofence_breach"
    OFF_ROUTE = "off_route"


class Position(NamedTuple):
    """What the rules need from one accepted record (a tuple: one is built per record)."""

    drone_id: str
    event_time_ms: int
    lon: float
    lat: float
    battery_pct: float
    airborne: bool


class LastSeen(NamedTuple):
    """Where and when a drone was last heard of (its newest accepted record)."""

    event_time_ms: int
    lon: float
    lat: float


class RaisedAlert(NamedTuple):
    """An alert currently raised for a drone: its kind and subject (a zone for a breach)."""

    kind: AlertKind
    subject_id: str


@dataclass(frozen=True)
class Transition:
    """An alert starting (active) or clearing (not active) for one drone."""

    kind: AlertKind
    drone_id: str
    active: bool
    event_time_ms: int
    lon: float
    lat: float
    message: str
    subject_id: str = ""


@dataclass
class _DroneFlags:
    last_event_ms: int = 0
    lon: float = 0.0
    lat: float = 0.0
    low_battery: bool = False
    link_lost: bool = False
    breached: set[str] = field(default_factory=set)
    off_route: bool = False


@dataclass(frozen=True)
class AnomalyRules:
    low_battery_pct: float
    link_lost_ms: int
    off_route_m: float


class AnomalyDetector:
    """Per-drone alert flags; each flag changes only on a threshold crossing with hysteresis.

    Link lost is judged by event time: the watermark is the newest event time seen on this
    worker, so a replay of old records raises exactly the alerts it raised live.
    """

    def __init__(self, rules: AnomalyRules) -> None:
        self.rules = rules
        self.watermark_ms = 0
        self._flags: dict[str, _DroneFlags] = {}
        self._paths: dict[str, list[tuple[float, float]]] = {}

    def forget(self, drone_ids: Iterable[str]) -> None:
        """Drop drones whose partition moved to another worker."""
        for drone_id in drone_ids:
            self._flags.pop(drone_id, None)

    def knows(self, drone_id: str) -> bool:
        return drone_id in self._flags

    def restore(self, drone_id: str, last: LastSeen, raised: Iterable[RaisedAlert]) -> None:
        """Seeds a drone this worker just took over (start-up or rebalance) from durable
        state: when it was last heard of, and which of its alerts are raised. Then a drone
        silent across the take-over still gets its link-lost alert, and a condition already
        alerted is not raised again. A drone this worker already watches keeps its flags."""
        if drone_id in self._flags:
            return
        flags = self._flags[drone_id] = _DroneFlags(last.event_time_ms, last.lon, last.lat)
        for kind, subject_id in raised:
            if kind is AlertKind.LOW_BATTERY:
                flags.low_battery = True
            elif kind is AlertKind.LINK_LOST:
                flags.link_lost = True
            elif kind is AlertKind.OFF_ROUTE:
                flags.off_route = True
            elif kind is AlertKind.GEOFENCE_BREACH and subject_id:
                flags.breached.add(subject_id)

    def set_path(self, drone_id: str, path: list[tuple[float, float]]) -> None:
        """The commanded path; an empty path means the drone has no route to keep."""
        if path:
            self._paths[drone_id] = path
        else:
            self._paths.pop(drone_id, None)

    def observe(self, position: Position, zones: Sequence[NoFlyZone]) -> list[Transition]:
        flags = self._flags.get(position.drone_id)
        if flags is None:
            flags = self._flags[position.drone_id] = _DroneFlags()
        out: list[Transition] = []
        # Only a record newer than the last one seen before the silence is a recovery (a
        # replay of older records after a restart is not).
        if flags.link_lost and position.event_time_ms > flags.last_event_ms:
            flags.link_lost = False
            out.append(self._transition(AlertKind.LINK_LOST, position, False, "link recovered"))
        if position.event_time_ms >= flags.last_event_ms:
            flags.last_event_ms = position.event_time_ms
            flags.lon, flags.lat = position.lon, position.lat
        if position.event_time_ms > self.watermark_ms:
            self.watermark_ms = position.event_time_ms
        out.extend(self._battery(flags, position))
        if zones or flags.breached:
            out.extend(self._geofence(flags, position, zones))
        if flags.off_route or position.drone_id in self._paths:
            out.extend(self._route(flags, position))
        return out

    def advance(self, watermark_ms: int) -> list[Transition]:
        """Raise link lost for every drone silent for longer than the rule, up to `watermark_ms`."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        out: list[Transition] = []
        for drone_id, flags in self._flags.items():
            silent_ms = self.watermark_ms - flags.last_event_ms
            if not flags.link_lost and silent_ms > self.rules.link_lost_ms:
                flags.link_lost = True
                out.append(
                    Transition(
                        AlertKind.LINK_LOST,
                        drone_id,
                        True,
                        self.watermark_ms,
                        flags.lon,
                        flags.lat,
                        f"no telemetry for {silent_ms / 1000:.1f} s",
                    )
                )
        return out

    def _battery(self, flags: _DroneFlags, position: Position) -> list[Transition]:
        threshold = self.rules.low_battery_pct
        if not flags.low_battery and position.battery_pct < threshold:
            flags.low_battery = True
            message = f"battery {position.battery_pct:.0f}% below {threshold:.0f}%"
            return [self._transition(AlertKind.LOW_BATTERY, position, True, message)]
        if flags.low_battery and position.battery_pct >= threshold + BATTERY_CLEAR_MARGIN_PCT:
            flags.low_battery = False
            message = f"battery back at {position.battery_pct:.0f}%"
            return [self._transition(AlertKind.LOW_BATTERY, position, False, message)]
        return []

    def _geofence(
        self, flags: _DroneFlags, position: Position, zones: Sequence[NoFlyZone]
    ) -> list[Transition]:
        inside = {
            zone.zone_id
            for zone in zones
            if zone.is_active(position.event_time_ms) and zone.contains(position.lon, position.lat)
        }
        out = [
            self._transition(
                AlertKind.GEOFENCE_BREACH, position, True, f"inside no-fly zone {zone}", zone
            )
            for zone in sorted(inside - flags.breached)
        ]
        out += [
            self._transition(
                AlertKind.GEOFENCE_BREACH, position, False, f"left no-fly zone {zone}", zone
            )
            for zone in sorted(flags.breached - inside)
        ]
        flags.breached = inside
        return out

    def _route(self, flags: _DroneFlags, position: Position) -> list[Transition]:
        path = self._paths.get(position.drone_id)
        if not path or not position.airborne:
            if flags.off_route:
                flags.off_route = False
                return [self._transition(AlertKind.OFF_ROUTE, position, False, "route ended")]
            return []
        distance = distance_to_path_m(position.lon, position.lat, path)
        limit = self.rules.off_route_m
        if not flags.off_route and distance > limit:
            flags.off_route = True
            message = f"{distance:.0f} m from the commanded path (limit {limit:.0f} m)"
            return [self._transition(AlertKind.OFF_ROUTE, position, True, message)]
        if flags.off_route and distance < limit * OFF_ROUTE_CLEAR_FRACTION:
            flags.off_route = False
            return [self._transition(AlertKind.OFF_ROUTE, position, False, "back on route")]
        return []

    @staticmethod
    def _transition(
        kind: AlertKind, position: Position, active: bool, message: str, subject: str = ""
    ) -> Transition:
        return Transition(
            kind,
            position.drone_id,
            active,
            position.event_time_ms,
            position.lon,
            position.lat,
            message,
            subject or position.drone_id,
        )


def distance_to_path_m(lon: float, lat: float, path: Sequence[tuple[float, float]]) -> float:
    """Shortest distance from a point to a polyline, on a local flat projection (metres)."""
    if len(path) == 1:
        return haversine_m(lon, lat, path[0][0], path[0][1])
    metres_per_deg_lat = 111_320.0
    metres_per_deg_lon = metres_per_deg_lat * math.cos(math.radians(lat))
    best = math.inf
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(path):
        ax, ay = (lon1 - lon) * metres_per_deg_lon, (lat1 - lat) * metres_per_deg_lat
        bx, by = (lon2 - lon) * metres_per_deg_lon, (lat2 - lat) * metres_per_deg_lat
        dx, dy = bx - ax, by - ay
        length_sq = dx * dx + dy * dy
        t = 0.0 if length_sq == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / length_sq))
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best
