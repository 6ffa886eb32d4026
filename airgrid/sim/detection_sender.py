"""The live twin's detections out: once a second, what the airborne drones' cameras see of the
ground truth (`seeing.py`), posted per home-nest gateway to POST /v1/detections with that
gateway's credential, as a dock relays its aircraft's detections. A detection not taken is
counted and logged; it never stops the run."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from airgrid.bus import now_ms
from airgrid.geo import LocalProjection
from airgrid.reference import ReferenceData
from airgrid.sim.fleet import Fleet
from airgrid.sim.ground_truth import ground_truth
from airgrid.sim.seeing import Seeing, Seen, camera_fixes
from airgrid.sim.sim_stats import SimStats

log = logging.getLogger("airgrid.sim")

SEE_EVERY_S = 1.0
"""At 15 m/s a drone moves 15 m between looks, against a footprint 128 m across at 120 m."""
HTTP_TIMEOUT_S = 10.0
MAX_BATCH = 500  # the API's limit per batch
# A live run draws its ground truth a day at a time, the next day's before the current ends.
GROUND_TRUTH_S = 24 * 3600.0


def detection_json(seen: Seen) -> dict[str, Any]:
    """The JSON a gateway posts for one detection; its id is unique per drone, event and time,
    and the media is a stand-in whose digest is that of the id."""
    event = seen.event
    detection_id = f"sim-{event.id}-{seen.drone_id}-{seen.observed_ms}"
    return {
        "id": detection_id,
        "drone_id": seen.drone_id,
        "mission_id": seen.mission_id,
        "scenario": event.scenario,
        "confidence": seen.confidence,
        "lon": event.lon,
        "lat": event.lat,
        "observed_time_ms": seen.observed_ms,
        "media": {
            "uri": f"sim://{seen.drone_id}/{seen.mission_id or 'no-mission'}/{detection_id}.jpg",
            "sha256": hashlib.sha256(detection_id.encode()).hexdigest(),
        },
        "attributes": {"model": "sim-detector-1", "ground_truth": event.id},
    }


def window_seed(seed: int, window: int) -> int:
    """The seed of a run's n-th day of ground truth (the first is the run's own)."""
    return seed + 7919 * window


class DetectionSender:
    """Seeing over the live fleet, batched per home-nest gateway to POST /v1/detections."""

    def __init__(
        self,
        reference: ReferenceData,
        *,
        url: str,
        gateway_keys: dict[str, str],
        seed: int,
        start_ms: int,
    ) -> None:
        """Draws the first day of ground truth from the run's seed and start (about 0.3 s)."""
        self.reference = reference
        self.url = url
        self.gateway_keys = gateway_keys
        self.home_nest = {d.id: d.home_nest for d in reference.drones}
        self.seed = seed
        self.window = 0
        self.until_ms = start_ms + round(GROUND_TRUTH_S * 1000)
        events = ground_truth(reference, seed=seed, start_ms=start_ms, duration_s=GROUND_TRUTH_S)
        self.seeing = Seeing(events, LocalProjection(*reference.zone.centre), seed=seed)

    def next_day(self, now_ms: int) -> None:
        """The next day of events, started from the end of the current one (its own warm-up
        dropped: the events going on across the boundary are the current day's)."""
        self.window += 1
        start = self.until_ms
        drawn = ground_truth(
            self.reference,
            seed=window_seed(self.seed, self.window),
            start_ms=start,
            duration_s=GROUND_TRUTH_S,
        )
        self.seeing.extend([e for e in drawn if e.start_ms >= start], now_ms)
        self.until_ms = start + round(GROUND_TRUTH_S * 1000)

    async def run(self, fleet: Fleet, stats: SimStats, stop: asyncio.Event) -> None:
        """Look every SEE_EVERY_S and post what was seen, until stop."""
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            while not stop.is_set():
                try:
                    await self.look(client, fleet, stats)
                except Exception:  # counted and logged; it never stops the run
                    stats.detections_failed += 1
                    log.exception("detections not posted")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=SEE_EVERY_S)
                except TimeoutError:
                    pass

    async def look(self, client: httpx.AsyncClient, fleet: Fleet, stats: SimStats) -> None:
        now = now_ms()
        if now >= self.until_ms - 3_600_000:  # the next day an hour ahead, off the loop
            await asyncio.to_thread(self.next_day, now)
        seen = self.seeing.see(camera_fixes(fleet), now)
        if seen:
            await self.post(client, seen, stats)

    async def post(self, client: httpx.AsyncClient, seen: Sequence[Seen], stats: SimStats) -> None:
        by_nest: dict[str, list[dict[str, Any]]] = {}
        for item in seen:
            nest = self.home_nest.get(item.drone_id, "")
            by_nest.setdefault(nest, []).append(detection_json(item))
        for nest, batch in sorted(by_nest.items()):
            key = self.gateway_keys.get(nest)
            if key is None:
                stats.detections_failed += len(batch)
                continue
            for first in range(0, len(batch), MAX_BATCH):
                await self._post_batch(client, nest, key, batch[first : first + MAX_BATCH], stats)

    async def _post_batch(
        self,
        client: httpx.AsyncClient,
        nest: str,
        key: str,
        batch: list[dict[str, Any]],
        stats: SimStats,
    ) -> None:
        try:
            response = await client.post(
                self.url, json={"detections": batch}, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as error:
            stats.detections_failed += len(batch)
            log.warning("detections post failed", extra={"nest_id": nest, "error": repr(error)})
            return
        if response.status_code != 202:
            stats.detections_failed += len(batch)
            log.warning(
                "detections refused", extra={"nest_id": nest, "status": response.status_code}
            )
            return
        rejected = response.json().get("rejected", [])
        stats.detections_sent += len(batch) - len(rejected)
        stats.detections_rejected += len(rejected)
        if rejected:
            log.info(
                "detections rejected",
                extra={"nest_id": nest, "reasons": sorted({r["reason"] for r in rejected})},
            )
