"""Grid bucket index of available drones in projected metres, searched in rings outward."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from typing import Protocol

XY = tuple[float, float]


class DroneGrid:
    """Square cells of cell_m; rings() yields the drones ring by ring with a distance bound.

    Every drone in ring k is at least (k - 1) * cell_m from the query point, so a search can
    stop as soon as that bound, turned into time, exceeds the best estimate found so far.
    """

    def __init__(self, cell_m: float = 2000.0) -> None:
        self.cell_m = cell_m
        self.cells: dict[tuple[int, int], dict[str, XY]] = {}
        self.where: dict[str, tuple[int, int]] = {}
        self._bounds: tuple[int, int, int, int] | None = None

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, drone_id: object) -> bool:
        return drone_id in self.where

    def _cell(self, xy: XY) -> tuple[int, int]:
        return (math.floor(xy[0] / self.cell_m), math.floor(xy[1] / self.cell_m))

    def put(self, drone_id: str, xy: XY) -> None:
        cell = self._cell(xy)
        old = self.where.get(drone_id)
        if old is not None and old != cell:
            self._drop(drone_id, old)
        self.cells.setdefault(cell, {})[drone_id] = xy
        self.where[drone_id] = cell
        if self._bounds is None:
            self._bounds = (cell[0], cell[1], cell[0], cell[1])
        else:
            x0, y0, x1, y1 = self._bounds
            self._bounds = (min(x0, cell[0]), min(y0, cell[1]), max(x1, cell[0]), max(y1, cell[1]))

    def remove(self, drone_id: str) -> None:
        cell = self.where.pop(drone_id, None)
        if cell is not None:
            self._drop(drone_id, cell)

    def _drop(self, drone_id: str, cell: tuple[int, int]) -> None:
        bucket = self.cells.get(cell)
        if bucket is not None:
            bucket.pop(drone_id, None)
            if not bucket:
                del self.cells[cell]

    def ring_cells(self, xy: XY) -> Iterator[tuple[float, list[tuple[float, tuple[int, int]]]]]:
        """(lower bound in metres, [(cell's nearest distance, cell)]) per ring of occupied
        cells, nearest ring first."""
        if self._bounds is None:
            return
        cx, cy = self._cell(xy)
        x0, y0, x1, y1 = self._bounds
        last = max(abs(cx - x0), abs(cx - x1), abs(cy - y0), abs(cy - y1))
        size = self.cell_m
        px, py = xy
        cells = self.cells
        for k in range(last + 1):
            found: list[tuple[float, tuple[int, int]]] = []
            for ox, oy in _ring_offsets(k):
                cell = (cx + ox, cy + oy)
                if cell in cells:
                    lx, ly = cell[0] * size, cell[1] * size
                    dx = lx - px if lx > px else (px - lx - size if px > lx + size else 0.0)
                    dy = ly - py if ly > py else (py - ly - size if py > ly + size else 0.0)
                    found.append((math.hypot(dx, dy), cell))
            yield (max(0, k - 1) * size, found)

    def rings(self, xy: XY) -> Iterator[tuple[float, list[str]]]:
        """(lower bound on distance in metres, drone ids sorted) per ring, nearest ring first."""
        if self._bounds is None:
            return
        cx, cy = self._cell(xy)
        x0, y0, x1, y1 = self._bounds
        last = max(abs(cx - x0), abs(cx - x1), abs(cy - y0), abs(cy - y1))
        for k in range(last + 1):
            found: list[str] = []
            if k == 0:
                found.extend(self.cells.get((cx, cy), {}))
            else:
                for x in range(cx - k, cx + k + 1):
                    for y in (cy - k, cy + k):
                        bucket = self.cells.get((x, y))
                        if bucket:
                            found.extend(bucket)
                for y in range(cy - k + 1, cy + k):
                    for x in (cx - k, cx + k):
                        bucket = self.cells.get((x, y))
                        if bucket:
                            found.extend(bucket)
            if found:
                found.sort()
                yield (max(0, k - 1) * self.cell_m, found)


@functools.cache
def _ring_offsets(k: int) -> tuple[tuple[int, int], ...]:
    """The cells of ring k around (0, 0), in _ring's order."""
    return tuple(_ring(0, 0, k))


def _ring(cx: int, cy: int, k: int) -> Iterator[tuple[int, int]]:
    if k == 0:
        yield (cx, cy)
        return
    for x in range(cx - k, cx + k + 1):
        yield (x, cy - k)
        yield (x, cy + k)
    for y in range(cy - k + 1, cy + k):
        yield (cx - k, y)
        yield (cx + k, y)


class IdleDrones:
    """Every idle drone the core may send, whichever index holds it (the live grid or the
    run cards' docked groups): `where` maps each one's id to its place there."""

    def __init__(self, *indexes: _HasWhere) -> None:
        self.indexes = indexes

    @property
    def where(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for index in self.indexes:
            found.update(index.where)
        return found

    def __len__(self) -> int:
        return sum(len(index.where) for index in self.indexes)

    def __contains__(self, drone_id: object) -> bool:
        return any(drone_id in index.where for index in self.indexes)


class _HasWhere(Protocol):
    @property
    def where(self) -> Mapping[str, object]: ...
