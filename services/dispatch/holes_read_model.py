"""The coverage holes read model: dispatch's writer keeps table `coverage_holes` equal to the
cells of its zone that no available drone reaches within the SLA (the operators' map reads
them through the view `map_coverage_holes`).

The coverage pass (`CoverageKeeper`, on the worker's clock) leaves its latest snapshot in
memory; this task looks at it every `every_s` seconds and, only when the set of holes differs
from what it last wrote, replaces the zone's rows in one transaction that first passes the
writer's fence. So the table costs at most one transaction per period, none while coverage is
steady, and a standby or deposed worker never writes: it runs only inside a writer's run, and
a transaction whose fence fails raises `WriterLockLost`, which ends that run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch.coverage import CoverageKeeper
from services.dispatch.domain.coverage import CoverageSnapshot
from services.dispatch.models import CoverageHoleRow
from services.dispatch.writer_lock import WriterLock

log = logging.getLogger("airgrid.dispatch")

# Seconds between looks at the latest coverage snapshot: the map refreshes every 10 s.
HOLES_EVERY_S = 5.0


class HolesReadModel:
    """Writes the current holes of one zone when they change; `run` loops until cancelled."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        writer: WriterLock,
        keeper: CoverageKeeper,
        zone: str,
        every_s: float = HOLES_EVERY_S,
    ) -> None:
        self.sessions = sessions
        self.writer = writer
        self.keeper = keeper
        self.zone = zone
        self.every_s = every_s
        # The holes the table holds for this zone; None until this run has written once
        # (another writer may have left other rows before it).
        self.written: tuple[int, ...] | None = None
        self._centres: list[tuple[float, float]] | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.write_if_changed()
            except SQLAlchemyError as error:
                # The decision path ends the run when the database is gone; the map only
                # waits for the next period.
                log.warning(
                    "coverage holes not written; retrying",
                    extra={"zone": self.zone, "error": type(error).__name__},
                )
            await asyncio.sleep(self.every_s)

    async def write_if_changed(self) -> bool:
        """Replace the zone's rows with the latest snapshot's holes, if they differ from the
        rows written last; True when it wrote."""
        snapshot = self.keeper.last
        if snapshot is None:
            return False
        holes = tuple(snapshot.uncovered())
        if holes == self.written:
            return False
        await self._replace(snapshot, holes)
        self.written = holes
        log.info(
            "coverage holes written",
            extra={"zone": self.zone, "holes": len(holes), "cells": snapshot.cells},
        )
        return True

    async def _replace(self, snapshot: CoverageSnapshot, holes: Sequence[int]) -> None:
        centres = self._cell_centres()
        at = datetime.now(UTC)
        rows = [
            {
                "zone": self.zone,
                "cell": cell,
                "lon": centres[cell][0],
                "lat": centres[cell][1],
                "cell_m": snapshot.cell_m,
                "computed_at": at,
            }
            for cell in holes
        ]
        async with self.sessions() as session, session.begin():
            await self.writer.fence(session)
            await session.execute(delete(CoverageHoleRow).where(CoverageHoleRow.zone == self.zone))
            if rows:
                await session.execute(insert(CoverageHoleRow), rows)

    def _cell_centres(self) -> list[tuple[float, float]]:
        """Every cell's centre as (lon, lat), computed once per grid."""
        if self._centres is None:
            grid = self.keeper.grid
            centres = []
            for x, y in grid.xy:
                lon, lat = grid.projection.to_lon_lat(float(x), float(y))
                centres.append((round(lon, 6), round(lat, 6)))
            self._centres = centres
        return self._centres
