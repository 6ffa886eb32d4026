"""Freshness: when each coverage cell of the zone was last seen, and which cells are overdue.

The zone is cut into the same square cells as coverage (airgrid.geo.grid_inside, the
coverage cell size). Each cell keeps one number, the last time a camera saw its centre; each
inspection plan is a mask over the cells (an area's polygon, or a corridor's centre line
buffered by half its width). Memory is fixed by the zone, the cell size and the number of
plans, never by how much telemetry arrives.

The rules (docs/inspection.md explains them):

- A telemetry fix sees the cells whose centres lie in the camera footprint: the disc of
  radius altitude × tan(fov / 2) under the drone, where fov is the camera's narrower field
  of view, so the disc lies inside the picture at any heading. Only fixes at inspection
  altitude (MIN_INSPECTION_ALT_M … MAX_INSPECTION_ALT_M above ground) see anything.
- A cell of a plan is due only while the plan is active (inside one of its daily windows,
  or always when it has none). Its deadline is revisit interval after the later of its last
  sighting and the moment the current window opened: a window's opening counts as a
  sighting, so nobody is late the minute a morning window opens.
- A due cell is fresh while now ≤ deadline, overdue after. A cell seen at t by an all-day
  plan is fresh until t + interval and not a millisecond after.
- Overall, a cell is due when any active plan holds it, and fresh when it is fresh for every
  active plan that holds it. With no due cell the share is 1: nothing asked is late.

Pure: time is an input, no clock and no I/O.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from airgrid.active_windows import ActiveWindow, is_active_at, open_since
from airgrid.geo import LocalProjection, Point, Ring, grid_inside
from airgrid.reference import InspectionPlanSpec
from airgrid.v1 import registry_pb2

# Below this a drone is taking off, landing or hugging roofs: its picture is not a survey.
MIN_INSPECTION_ALT_M = 30.0
# Above this the detection algorithms lose the resolution they are trained for (and 120 m is
# the usual ceiling for routine flights).
MAX_INSPECTION_ALT_M = 150.0
NEVER = -1
"""last-seen value of a cell no camera has seen."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_SNAPSHOT_MAGIC = b"AGF1"
_SNAPSHOT_HEADER = struct.Struct("<4sdddI")


def footprint_radius_m(alt_m: float, fov_deg: float) -> float:
    """Radius of the ground disc a nadir camera sees; 0 outside inspection altitude."""
    if not (math.isfinite(alt_m) and math.isfinite(fov_deg)):
        return 0.0
    if not MIN_INSPECTION_ALT_M <= alt_m <= MAX_INSPECTION_ALT_M or not 0 < fov_deg < 180:
        return 0.0
    return alt_m * math.tan(math.radians(fov_deg) / 2.0)


@dataclass(frozen=True)
class PlanArea:
    """What freshness needs of an inspection plan: where, how often, and when."""

    id: str
    department: str
    revisit_interval_s: int
    windows: tuple[ActiveWindow, ...] = ()
    ring: tuple[Point, ...] | None = None
    """An area's exterior ring (lon, lat)."""
    path: tuple[Point, ...] | None = None
    """A corridor's centre line (lon, lat); width_m is its full width."""
    width_m: float = 0.0

    def __post_init__(self) -> None:
        if (self.ring is None) == (self.path is None):
            raise ValueError(f"plan {self.id}: give either an area ring or a corridor path")
        if self.path is not None and not self.width_m > 0:
            raise ValueError(f"plan {self.id}: a corridor needs a width above 0")
        if self.revisit_interval_s <= 0:
            raise ValueError(f"plan {self.id}: the revisit interval must be positive")

    @classmethod
    def from_spec(cls, spec: InspectionPlanSpec) -> PlanArea:
        windows = tuple(ActiveWindow.parse(start, end) for start, end in spec.active_windows)
        coordinates = spec.geometry["coordinates"]
        if spec.geometry["type"] == "Polygon":
            ring = tuple((float(p[0]), float(p[1])) for p in coordinates[0])
            return cls(spec.id, spec.department, spec.revisit_interval_s, windows, ring=ring)
        path = tuple((float(p[0]), float(p[1])) for p in coordinates)
        return cls(
            spec.id,
            spec.department,
            spec.revisit_interval_s,
            windows,
            path=path,
            width_m=float(spec.width_m or 0.0),
        )

    @classmethod
    def from_event(cls, plan: registry_pb2.InspectionPlan) -> PlanArea:
        windows = tuple(ActiveWindow.parse(w.start, w.end) for w in plan.active_windows)
        if plan.kind == "corridor":
            path = tuple(zip(plan.path_lon, plan.path_lat, strict=True))
            return cls(
                plan.id,
                plan.department,
                int(plan.revisit_interval_s),
                windows,
                path=path,
                width_m=plan.width_m,
            )
        ring = tuple(zip(plan.ring_lon, plan.ring_lat, strict=True))
        return cls(plan.id, plan.department, int(plan.revisit_interval_s), windows, ring=ring)


@dataclass(frozen=True)
class PlanShare:
    plan_id: str
    department: str
    active: bool
    """Inside an active window now; an inactive plan has no due cells."""
    cells: int
    """Cells of the zone the plan holds."""
    due_cells: int
    fresh_cells: int

    @property
    def share(self) -> float:
        """Fresh among due, in [0, 1]; 1 when nothing is due."""
        return self.fresh_cells / self.due_cells if self.due_cells else 1.0


@dataclass(frozen=True)
class FreshnessReport:
    at_ms: int
    cells: int
    due_cells: int
    fresh_cells: int
    plans: tuple[PlanShare, ...]

    @property
    def share(self) -> float:
        """Fresh among due over all plans, in [0, 1]; 1 when nothing is due."""
        return self.fresh_cells / self.due_cells if self.due_cells else 1.0


@dataclass(frozen=True)
class OverdueCell:
    cell: int
    lon: float
    lat: float
    plan_id: str
    """The active plan under which the cell is latest (relative to its interval)."""
    department: str
    last_seen_ms: int | None
    """None: never seen."""
    overdue_s: float | None
    """Seconds past the deadline; None when never seen and no window opening bounds it."""
    lateness: float
    """overdue_s / the plan's interval; infinite for a cell never seen. Ranks the cells."""


@dataclass(frozen=True)
class FreshnessSnapshot:
    """Every cell's last-seen time, with what identifies the grid it belongs to."""

    cell_m: float
    origin: Point
    last_seen_ms: tuple[int, ...]

    def encode(self) -> bytes:
        header = _SNAPSHOT_HEADER.pack(
            _SNAPSHOT_MAGIC, self.cell_m, self.origin[0], self.origin[1], len(self.last_seen_ms)
        )
        return header + np.asarray(self.last_seen_ms, dtype="<i8").tobytes()

    @classmethod
    def decode(cls, data: bytes) -> FreshnessSnapshot:
        if len(data) < _SNAPSHOT_HEADER.size:
            raise ValueError("a freshness snapshot is at least its header long")
        magic, cell_m, lon0, lat0, n = _SNAPSHOT_HEADER.unpack_from(data)
        if magic != _SNAPSHOT_MAGIC:
            raise ValueError("not a freshness snapshot (bad magic)")
        body = data[_SNAPSHOT_HEADER.size :]
        if len(body) != 8 * n:
            raise ValueError(f"a snapshot of {n} cells needs {8 * n} bytes, got {len(body)}")
        seen = np.frombuffer(body, dtype="<i8")
        return cls(cell_m, (lon0, lat0), tuple(int(v) for v in seen))


class FreshnessGrid:
    """The zone's cells, their last-seen times, and the plans that want them seen."""

    def __init__(
        self,
        boundary: Ring,
        projection: LocalProjection,
        *,
        cell_m: float,
        timezone: ZoneInfo,
        plans: Iterable[PlanArea] = (),
    ) -> None:
        centres = grid_inside(boundary, cell_m, projection)
        if not centres:
            raise ValueError("the zone boundary holds no grid cell; is it a valid ring?")
        self.cell_m = cell_m
        self.projection = projection
        self.timezone = timezone
        self.xy: FloatArray = np.asarray(centres, dtype=np.float64)
        # The grid is regular: a centre's row and column give its index through one lookup
        # table, so a footprint touches only the few cells around it.
        self._x0 = float(self.xy[:, 0].min())
        self._y0 = float(self.xy[:, 1].min())
        cols = np.rint((self.xy[:, 0] - self._x0) / cell_m).astype(np.int64)
        rows = np.rint((self.xy[:, 1] - self._y0) / cell_m).astype(np.int64)
        self._lookup: IntArray = np.full(
            (int(rows.max()) + 1, int(cols.max()) + 1), -1, dtype=np.int64
        )
        self._lookup[rows, cols] = np.arange(len(centres), dtype=np.int64)
        self.last_seen_ms: IntArray = np.full(len(centres), NEVER, dtype=np.int64)
        self._plans: tuple[PlanArea, ...] = ()
        self._masks: dict[str, BoolArray] = {}
        self.set_plans(plans)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def plans(self) -> tuple[PlanArea, ...]:
        return self._plans

    def set_plans(self, plans: Iterable[PlanArea]) -> None:
        """Replace the plans; cells keep their last-seen times (sightings are not per plan)."""
        self._plans = tuple(sorted(plans, key=lambda p: p.id))
        self._masks = {p.id: self.cells_of(p) for p in self._plans}

    def cells_of(self, plan: PlanArea) -> BoolArray:
        """Which cells the plan holds: centre inside its area, or within half its width of its
        corridor's centre line."""
        if plan.ring is not None:
            ring = [self.projection.to_xy(lon, lat) for lon, lat in plan.ring]
            return _inside(self.xy, ring)
        assert plan.path is not None
        path = [self.projection.to_xy(lon, lat) for lon, lat in plan.path]
        return _near_line(self.xy, path, plan.width_m / 2.0)

    def cell_centre(self, cell: int) -> Point:
        """(lon, lat) of a cell's centre."""
        x, y = self.xy[cell]
        return self.projection.to_lon_lat(float(x), float(y))

    # --- sightings ---------------------------------------------------------------------------

    def footprint_cells(self, lon: float, lat: float, radius_m: float) -> IntArray:
        """Indices of the cells whose centres lie within radius_m of (lon, lat)."""
        if not radius_m > 0 or not (math.isfinite(lon) and math.isfinite(lat)):
            return np.empty(0, dtype=np.int64)
        x, y = self.projection.to_xy(lon, lat)
        rows, cols = self._lookup.shape
        c0 = max(0, math.floor((x - radius_m - self._x0) / self.cell_m))
        c1 = min(cols - 1, math.ceil((x + radius_m - self._x0) / self.cell_m))
        r0 = max(0, math.floor((y - radius_m - self._y0) / self.cell_m))
        r1 = min(rows - 1, math.ceil((y + radius_m - self._y0) / self.cell_m))
        if c0 > c1 or r0 > r1:
            return np.empty(0, dtype=np.int64)
        candidates = self._lookup[r0 : r1 + 1, c0 : c1 + 1].ravel()
        candidates = candidates[candidates >= 0]
        d2 = (self.xy[candidates, 0] - x) ** 2 + (self.xy[candidates, 1] - y) ** 2
        covered: IntArray = candidates[d2 <= radius_m * radius_m]
        return covered

    def observe(self, lon: float, lat: float, radius_m: float, time_ms: int) -> int:
        """Mark the cells a footprint covers as seen at time_ms; returns how many it covers.

        A cell keeps the later of its time and time_ms, so fixes may arrive in any order."""
        cells = self.footprint_cells(lon, lat, radius_m)
        if cells.size:
            self.last_seen_ms[cells] = np.maximum(self.last_seen_ms[cells], time_ms)
        return int(cells.size)

    def observe_fix(
        self, lon: float, lat: float, alt_m: float, fov_deg: float, time_ms: int
    ) -> int:
        """A telemetry fix of a flying drone: its camera footprint is seen at time_ms."""
        return self.observe(lon, lat, footprint_radius_m(alt_m, fov_deg), time_ms)

    # --- what is due -------------------------------------------------------------------------

    def _deadlines(self, now_ms: int) -> list[tuple[PlanArea, BoolArray, IntArray]]:
        """For every plan active at now_ms: its mask and each cell's reference time, the later
        of its last sighting and the opening of the current window (NEVER when neither)."""
        moment = datetime.fromtimestamp(now_ms / 1000.0, tz=UTC)
        active = []
        for plan in self._plans:
            if not is_active_at(plan.windows, moment, self.timezone):
                continue
            opened = open_since(plan.windows, moment, self.timezone)
            reference = self.last_seen_ms
            if opened is not None:
                reference = np.maximum(reference, int(opened.timestamp() * 1000))
            active.append((plan, self._masks[plan.id], reference))
        return active

    def due_references(self, now_ms: int) -> list[tuple[PlanArea, BoolArray, IntArray]]:
        """Per plan active at now_ms: its cell mask and each cell's reference time, the later
        of its last sighting and the current window's opening (NEVER when neither)."""
        return self._deadlines(now_ms)

    def _fresh(self, plan: PlanArea, reference: IntArray, now_ms: int) -> BoolArray:
        fresh: BoolArray = (reference != NEVER) & (
            now_ms - reference <= plan.revisit_interval_s * 1000
        )
        return fresh

    def report(self, now_ms: int) -> FreshnessReport:
        """Shares of due cells that are fresh at now_ms, per plan and overall."""
        due = np.zeros(len(self), dtype=np.bool_)
        late = np.zeros(len(self), dtype=np.bool_)
        active = {plan.id: (mask, reference) for plan, mask, reference in self._deadlines(now_ms)}
        shares = []
        for plan in self._plans:
            mask = self._masks[plan.id]
            if plan.id not in active:
                shares.append(PlanShare(plan.id, plan.department, False, int(mask.sum()), 0, 0))
                continue
            fresh = self._fresh(plan, active[plan.id][1], now_ms) & mask
            due |= mask
            late |= mask & ~fresh
            count = int(mask.sum())
            shares.append(PlanShare(plan.id, plan.department, True, count, count, int(fresh.sum())))
        due_cells = int(due.sum())
        return FreshnessReport(
            at_ms=now_ms,
            cells=len(self),
            due_cells=due_cells,
            fresh_cells=due_cells - int(late.sum()),
            plans=tuple(shares),
        )

    def overdue(self, now_ms: int, limit: int = 500) -> list[OverdueCell]:
        """The overdue cells, latest first (by overdue time over the plan's interval, a cell
        never seen first of all), then by cell index; at most `limit` of them."""
        worst = np.full(len(self), -np.inf)
        worst_plan = np.full(len(self), -1, dtype=np.int64)
        references: list[IntArray] = []
        active = self._deadlines(now_ms)
        for i, (plan, mask, reference) in enumerate(active):
            references.append(reference)
            interval_ms = plan.revisit_interval_s * 1000
            late = mask & ~self._fresh(plan, reference, now_ms)
            lateness = np.where(
                reference == NEVER, np.inf, (now_ms - reference - interval_ms) / interval_ms
            )
            better = late & (lateness > worst)
            worst = np.where(better, lateness, worst)
            worst_plan = np.where(better, i, worst_plan)
        cells = np.flatnonzero(worst_plan >= 0)
        order = np.lexsort((cells, -worst[cells]))[: max(0, limit)]
        found = []
        for cell in cells[order]:
            plan, _, _ = active[int(worst_plan[cell])]
            reference_ms = int(references[int(worst_plan[cell])][cell])
            seen = int(self.last_seen_ms[cell])
            lon, lat = self.cell_centre(int(cell))
            found.append(
                OverdueCell(
                    cell=int(cell),
                    lon=lon,
                    lat=lat,
                    plan_id=plan.id,
                    department=plan.department,
                    last_seen_ms=None if seen == NEVER else seen,
                    overdue_s=None
                    if reference_ms == NEVER
                    else (now_ms - reference_ms) / 1000.0 - plan.revisit_interval_s,
                    lateness=float(worst[cell]),
                )
            )
        return found

    def overdue_geojson(self, now_ms: int, limit: int = 500) -> dict[str, Any]:
        """The overdue cells as a GeoJSON FeatureCollection of cell squares, latest first."""
        half = self.cell_m / 2.0
        features = []
        for rank, cell in enumerate(self.overdue(now_ms, limit), start=1):
            x, y = self.xy[cell.cell]
            corners = [(x - half, y - half), (x + half, y - half), (x + half, y + half)]
            corners += [(x - half, y + half), (x - half, y - half)]
            ring = [list(self.projection.to_lon_lat(float(cx), float(cy))) for cx, cy in corners]
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "cell": cell.cell,
                        "rank": rank,
                        "plan": cell.plan_id,
                        "department": cell.department,
                        "last_seen_ms": cell.last_seen_ms,
                        "overdue_s": cell.overdue_s,
                        "lateness": None if math.isinf(cell.lateness) else cell.lateness,
                    },
                }
            )
        return {"type": "FeatureCollection", "features": features}

    # --- rebuilding after a restart ----------------------------------------------------------

    def snapshot(self) -> FreshnessSnapshot:
        return FreshnessSnapshot(
            cell_m=self.cell_m,
            origin=(self.projection.lon0, self.projection.lat0),
            last_seen_ms=tuple(int(v) for v in self.last_seen_ms),
        )

    def restore(self, snapshot: FreshnessSnapshot) -> None:
        """Take, per cell, the later of what the grid holds and what the snapshot holds, so
        restoring and replaying the track's tail give the same grid in any order."""
        if (
            snapshot.cell_m != self.cell_m
            or snapshot.origin != (self.projection.lon0, self.projection.lat0)
            or len(snapshot.last_seen_ms) != len(self)
        ):
            raise ValueError(
                "the snapshot is of another grid (cell size, origin or cell count differ); "
                "rebuild freshness from the track instead"
            )
        restored = np.asarray(snapshot.last_seen_ms, dtype=np.int64)
        self.last_seen_ms = np.maximum(self.last_seen_ms, restored)


def _inside(xy: FloatArray, ring: Sequence[Point]) -> BoolArray:
    """Even-odd ray casting of every point against the ring, vectorized over the points."""
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), dtype=np.bool_)
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if yi != yj:
            crosses = ((yi > y) != (yj > y)) & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
            inside ^= crosses
        j = i
    return inside


def _near_line(xy: FloatArray, path: Sequence[Point], half_width_m: float) -> BoolArray:
    """Points within half_width_m of the polyline (distance to its nearest segment)."""
    near = np.zeros(len(xy), dtype=np.bool_)
    for (ax, ay), (bx, by) in itertools.pairwise(path):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        if length2 == 0:
            t = np.zeros(len(xy))
        else:
            t = np.clip(((xy[:, 0] - ax) * dx + (xy[:, 1] - ay) * dy) / length2, 0.0, 1.0)
        px, py = ax + t * dx, ay + t * dy
        near |= (xy[:, 0] - px) ** 2 + (xy[:, 1] - py) ** 2 <= half_width_m * half_width_m
    return near
