"""The overdue cells read model: table `inspection_overdue_cells` holds, per deployment, the
most overdue cells of each active inspection plan (the operators' map reads them through the
view `map_overdue_cells`).

One writer at a time, and always the best-informed one: the freshness keeper calls `write`
inside its merge transaction, after it has merged its grid with the stored snapshot and while
it holds that row's lock. Its grid then holds every sighting any replica has stored, so the
rows it writes are never older than rows another replica wrote before it. Merges queue on the
lock, so the check that the stored rows are older than `min_interval_ms` and the replacement
are one step: whatever the number of replicas, the rows are replaced at most once per
`min_interval_ms` (half the merge period), by whichever replica merges first after it, and
any replica takes over when the last writer stops.

Bounded: at most `per_plan` cells per plan (the latest by lateness, then the lower cell
index), so the map never draws more than plans × per_plan squares. A cell due under two plans
has a row under each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from airgrid.freshness import NEVER, FreshnessGrid
from services.telemetry.models import inspection_overdue_cells

# The map draws a square per row; 200 cells of 250 m are 12.5 km² per plan.
CELLS_PER_PLAN = 200


@dataclass(frozen=True)
class OverdueRow:
    plan: str
    department: str
    cell: int
    last_seen_ms: int | None
    overdue_s: float | None
    """Seconds past the deadline; None for a cell never seen with no window opening."""
    lateness: float | None
    """overdue_s over the plan's revisit interval, as airgrid.freshness ranks cells."""


def overdue_by_plan(grid: FreshnessGrid, now_ms: int, per_plan: int) -> list[OverdueRow]:
    """Per plan active at now_ms, its `per_plan` latest overdue cells (never seen first, then by
    lateness, then by cell index), by the rule of airgrid.freshness: a due cell is overdue once
    now is past its reference time plus the plan's interval."""
    rows = []
    for plan, mask, reference in grid.due_references(now_ms):
        interval_ms = plan.revisit_interval_s * 1000
        late = mask & ((reference == NEVER) | (now_ms - reference > interval_ms))
        cells = np.flatnonzero(late)
        since = reference[cells]
        lateness = np.where(since == NEVER, np.inf, (now_ms - since - interval_ms) / interval_ms)
        for cell in cells[np.lexsort((cells, -lateness))[: max(0, per_plan)]]:
            ref = int(reference[cell])
            seen = int(grid.last_seen_ms[cell])
            overdue_s = None if ref == NEVER else (now_ms - ref - interval_ms) / 1000.0
            rows.append(
                OverdueRow(
                    plan=plan.id,
                    department=plan.department,
                    cell=int(cell),
                    last_seen_ms=None if seen == NEVER else seen,
                    overdue_s=overdue_s,
                    lateness=None if overdue_s is None else overdue_s / plan.revisit_interval_s,
                )
            )
    return rows


class OverdueCellsReadModel:
    """Replaces one deployment's rows with its grid's overdue cells, at most once per
    `min_interval_ms` across replicas."""

    def __init__(
        self, stream: str, *, per_plan: int = CELLS_PER_PLAN, min_interval_ms: int = 5_000
    ) -> None:
        self.stream = stream
        self.per_plan = per_plan
        self.min_interval_ms = min_interval_ms
        self._centres: dict[int, tuple[float, float]] = {}

    async def write(self, connection: AsyncConnection, grid: FreshnessGrid, now_ms: int) -> bool:
        """Within the merge's transaction (the snapshot row locked): replace the stream's rows
        unless they were computed less than `min_interval_ms` before now_ms. True when it
        wrote."""
        table = inspection_overdue_cells
        last = (
            await connection.execute(
                sa.select(sa.func.max(table.c.computed_at)).where(table.c.stream == self.stream)
            )
        ).scalar_one_or_none()
        at = datetime.fromtimestamp(now_ms / 1000.0, UTC)
        if last is not None:
            last = last if last.tzinfo else last.replace(tzinfo=UTC)
            if (at - last).total_seconds() * 1000.0 < self.min_interval_ms:
                return False
        rows = [self._row(grid, row, at) for row in overdue_by_plan(grid, now_ms, self.per_plan)]
        await connection.execute(sa.delete(table).where(table.c.stream == self.stream))
        if rows:
            await connection.execute(sa.insert(table), rows)
        return True

    def _row(self, grid: FreshnessGrid, row: OverdueRow, at: datetime) -> dict[str, Any]:
        lon, lat = self._centre(grid, row.cell)
        return {
            "stream": self.stream,
            "plan": row.plan,
            "cell": row.cell,
            "department": row.department,
            "lon": lon,
            "lat": lat,
            "cell_m": grid.cell_m,
            "last_seen_ms": row.last_seen_ms,
            "overdue_s": row.overdue_s,
            "lateness": row.lateness,
            "computed_at": at,
        }

    def _centre(self, grid: FreshnessGrid, cell: int) -> tuple[float, float]:
        """A cell's centre as (lon, lat), kept: the grid's cells never move."""
        if cell not in self._centres:
            lon, lat = grid.cell_centre(cell)
            self._centres[cell] = (round(lon, 6), round(lat, 6))
        return self._centres[cell]
