"""The live twin's detections: what it posts passes telemetry's detection rules, and its
ground truth rolls on a day at a time without a gap or a repeated event."""

from __future__ import annotations

from functools import cache

from airgrid.reference import ReferenceData, load_reference
from airgrid.sim.detection_sender import GROUND_TRUTH_S, DetectionSender, detection_json
from airgrid.sim.ground_truth import GroundEvent
from airgrid.sim.physics import CRUISING
from airgrid.sim.seeing import Seen
from services.telemetry.detection_schemas import DetectionBatchIn
from services.telemetry.domain.detections import DroneFlight, validate_detection

START_MS = 1_780_000_000_000
DAY_MS = round(GROUND_TRUTH_S * 1000)


@cache
def reference() -> ReferenceData:
    return load_reference()


def sender() -> DetectionSender:
    return DetectionSender(
        reference(), url="http://telemetry/v1/detections", gateway_keys={}, seed=5,
        start_ms=START_MS,
    )  # fmt: skip


def test_a_posted_detection_passes_the_apis_shape_and_every_detection_rule() -> None:
    event = sender().seeing.index.events[0]
    drone = reference().drones[0].id
    seen = Seen(event, drone, "m-1", START_MS + 1000, 0.87)
    batch = DetectionBatchIn.model_validate({"detections": [detection_json(seen)]})
    detection = batch.detections[0].to_proto()
    rejection = validate_detection(
        detection,
        known_drones={drone},
        scenarios={s.code for s in reference().scenarios},
        boundary=reference().zone.boundary,
        flights={drone: DroneFlight(CRUISING, START_MS + 900)},
        now_ms=START_MS + 1200,
    )
    assert rejection is None
    assert detection.scenario == event.scenario and detection.mission_id == "m-1"
    assert drone in detection.id and event.id in detection.id


def test_the_ground_truth_rolls_on_a_day_at_a_time_without_gaps_or_repeats() -> None:
    live = sender()
    first = {e.id: e for e in live.seeing.index.events}
    boundary = START_MS + DAY_MS
    live.next_day(boundary - 3_600_000)
    after: dict[str, GroundEvent] = {e.id: e for e in live.seeing.index.events}
    # The first day's events still going on an hour before its end are kept...
    assert {i for i, e in first.items() if e.end_ms > boundary - 3_600_000} <= set(after)
    # ...and the next day adds only events that start from its beginning, under new ids.
    added = [e for i, e in after.items() if i not in first]
    assert added and all(boundary <= e.start_ms < boundary + DAY_MS for e in added)
    assert len({e.id for e in added} & set(first)) == 0
    assert live.until_ms == boundary + DAY_MS
