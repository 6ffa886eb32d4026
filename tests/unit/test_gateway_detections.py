"""Detections through the gateways' pure parts: the DJI `ai_detection` event and the MAVLink
image capture + detection TUNNEL, their garbage counted by reason, and the simulated
detectors (seeded, from the catalogue)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson
import pytest
from pymavlink.dialects.v20 import common as mavlink

from airgrid.reference import load_reference
from airgrid.v1 import inspection_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.dji_codec import PayloadError, detection_of, parse_envelope
from gateways.mavlink_codec import (
    DETECTION_TUNNEL_TYPE,
    Capture,
    DetectionDecodeError,
    DetectionNote,
    DetectionPairing,
    capture_of,
    note_of,
)
from gateways.mavlink_gateway import MavlinkGateway
from gateways.mqtt_gateway import MqttGateway
from gateways.simulated_dock import SimulatedDock
from gateways.simulated_mavlink import SimulatedMavlinkDrone
from gateways.simulated_sightings import Sighting, SightingSource, catalogue_codes

DRONE = RegisteredDrone("drone-001", "nest-01", 120.0)
SHA = "0f" * 32
MAV = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)


def event(data: dict[str, Any], **extra: Any) -> bytes:
    body = {"tid": "t1", "bid": "b1", "timestamp": 1, "method": "ai_detection", "data": data}
    return orjson.dumps({**body, **extra})


def dji_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sn": "AC1",
        "scenario_code": "smoke",
        "confidence": 0.82,
        "longitude": 114.41,
        "latitude": 30.48,
        "observed_time": 1_764_900_000_000,
        "media": {"url": "https://media/1.jpg", "sha256": SHA},
        "attributes": {"model": "m1"},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_dji_detection_event_maps_every_field() -> None:
    sn, detection = detection_of(parse_envelope(event(dji_data())))
    assert sn == "AC1"
    assert detection == inspection_pb2.Detection(
        id="dji-AC1-b1",
        scenario="smoke",
        confidence=0.82,
        lon=114.41,
        lat=30.48,
        observed_time_ms=1_764_900_000_000,
        media=inspection_pb2.MediaRef(uri="https://media/1.jpg", sha256=SHA),
        attributes={"model": "m1"},
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sn": None}, "detection_missing_field"),
        ({"sn": 7}, "detection_bad_field"),
        ({"scenario_code": ""}, "detection_bad_field"),
        ({"confidence": "high"}, "detection_bad_field"),
        ({"confidence": 1.5}, "detection_bad_field"),
        ({"longitude": None}, "detection_missing_field"),
        ({"latitude": 91.0}, "detection_bad_field"),
        ({"observed_time": "now"}, "detection_bad_field"),
        ({"observed_time": True}, "detection_bad_field"),
        ({"media": "x.jpg"}, "detection_missing_field"),
        ({"media": {"url": "u", "sha256": "abc"}}, "detection_bad_field"),
        ({"media": {"sha256": SHA}}, "detection_missing_field"),
        ({"attributes": {"a": 1}}, "detection_bad_field"),
        ({"attributes": ["a"]}, "detection_bad_field"),
    ],
)
def test_dji_detection_garbage_has_a_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadError) as raised:
        detection_of(parse_envelope(event(dji_data(**changes))))
    assert raised.value.reason == reason


def test_mqtt_gateway_forwards_detections_of_admitted_aircraft_and_counts_garbage() -> None:
    detections: list[inspection_pb2.Detection] = []
    gateway = MqttGateway(
        docks={"DOCK1": "nest-01"},
        aircraft={"AC1": DRONE.id},
        registered=lambda: {DRONE.id: DRONE},
        submit=lambda record: None,
        submit_detection=detections.append,
        topic_prefix="x/",
    )
    topic = "x/thing/product/DOCK1/events"
    gateway.handle(topic, event(dji_data(confidence="high")))
    gateway.handle(topic, b"{not json")
    gateway.handle(topic, event(dji_data(sn="STRANGER")))
    gateway.handle(topic, event({"x": 1}, method="hms"))  # another event: not a detection
    gateway.handle(topic, event(dji_data(), bid="b2"))
    assert [(d.id, d.drone_id) for d in detections] == [("dji-AC1-b2", DRONE.id)]
    assert set(gateway._errors) == {"detection_bad_field", "not_json", "unknown_device"}


def capture_message(index: int, **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "time_boot_ms": 5,
        "time_utc": 1_764_900_000_123_000,
        "camera_id": 0,
        "lat": 304_800_000,
        "lon": 1_144_100_000,
        "alt": 140_000,
        "relative_alt": 120_000,
        "q": [1.0, 0.0, 0.0, 0.0],
        "image_index": index,
        "capture_result": 1,
        "file_url": b"mavlink://sim/1/img.jpg",
    }
    fields.update(changes)
    return MAV.camera_image_captured_encode(**fields)


def note_payload(index: int, *, scenario: bytes = b"smoke", confidence: int = 8_200) -> bytes:
    head = struct.pack("<BiH32sB", 1, index, confidence, bytes.fromhex(SHA), len(scenario))
    return head + scenario + b"model=m1\ncamera=wide"


def tunnel_message(payload: bytes, payload_type: int = DETECTION_TUNNEL_TYPE) -> Any:
    return MAV.tunnel_encode(0, 0, payload_type, len(payload), list(payload.ljust(128, b"\0")))


def wire(message: Any) -> Any:
    """The message as the gateway gets it: packed, sent and parsed again."""
    parser = mavlink.MAVLink(None)
    return parser.parse_char(message.pack(MAV))


def test_mavlink_capture_and_note_map_every_field() -> None:
    capture = capture_of(wire(capture_message(7)))
    assert capture == Capture(7, 114.41, 30.48, 1_764_900_000_123, "mavlink://sim/1/img.jpg")
    note = note_of(wire(tunnel_message(note_payload(7))))
    assert note == DetectionNote(7, "smoke", 0.82, SHA, {"model": "m1", "camera": "wide"})
    assert note_of(wire(tunnel_message(b"\x01\x02", payload_type=3))) is None  # not ours
    assert capture_of(wire(capture_message(8, capture_result=0))) is None  # no image


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (capture_message(1, lat=0, lon=0), "detection_bad_position"),
        (capture_message(1, lat=1_000_000_000), "detection_bad_position"),
        (capture_message(1, time_utc=0), "detection_no_utc_time"),
        (capture_message(1, file_url=b""), "detection_no_file_url"),
        (tunnel_message(b"\x01\x00"), "detection_short_note"),
        (tunnel_message(b"\x09" + note_payload(1)[1:]), "detection_note_version"),
        (tunnel_message(note_payload(1, confidence=10_001)), "detection_bad_confidence"),
        (tunnel_message(note_payload(1, scenario=b"")), "detection_bad_scenario"),
        (tunnel_message(note_payload(1, scenario="煙".encode())), "detection_bad_scenario"),
        (tunnel_message(note_payload(1) + b"\xff\xfe"), "detection_bad_attributes"),
    ],
)
def test_mavlink_detection_garbage_has_a_reason(message: Any, reason: str) -> None:
    decoded = wire(message)
    with pytest.raises(DetectionDecodeError) as raised:
        if decoded.get_type() == "TUNNEL":
            note_of(decoded)
        else:
            capture_of(decoded)
    assert raised.value.reason == reason


def test_pairing_meets_halves_in_either_order_and_is_bounded() -> None:
    pairing = DetectionPairing(bound=2)
    capture = Capture(1, 114.4, 30.5, 1, "u")
    note = DetectionNote(1, "smoke", 0.5, SHA, {})
    assert pairing.add_capture(capture) is None
    assert pairing.add_note(note) == (capture, note)
    assert pairing.add_note(note) is None
    assert pairing.add_capture(capture) == (capture, note)
    for index in range(2, 6):  # notes whose captures never come
        pairing.add_note(DetectionNote(index, "smoke", 0.5, SHA, {}))
    assert len(pairing.notes) == 2 and pairing.unpaired_notes == 2
    for index in range(10, 20):  # plain photos: bounded, not counted as losses
        pairing.add_capture(Capture(index, 114.4, 30.5, 1, "u"))
    assert len(pairing.captures) == 2 and pairing.unpaired_notes == 2


def test_mavlink_gateway_forwards_paired_detections_and_counts_garbage() -> None:
    detections: list[inspection_pb2.Detection] = []
    gateway = MavlinkGateway(
        systems={1: DRONE.id},
        registered=lambda: {DRONE.id: DRONE},
        submit=lambda record: None,
        submit_detection=detections.append,
    )
    address = ("127.0.0.1", 1)
    for message in (
        MAV.heartbeat_encode(2, 12, 0, 0, 3),
        capture_message(1, time_utc=0),
        tunnel_message(note_payload(1, confidence=60_000)),
        tunnel_message(note_payload(3)),
        capture_message(3),
    ):
        gateway.datagram_received(message.pack(MAV), address)
    assert [(d.id, d.drone_id, d.scenario) for d in detections] == [
        (f"mav-{DRONE.id}-1764900000123-3", DRONE.id, "smoke")
    ]
    assert set(gateway._errors) == {"detection_no_utc_time", "detection_bad_confidence"}


def test_simulated_detectors_are_seeded_and_speak_the_catalogue() -> None:
    codes = catalogue_codes()
    assert "smoke" in codes and len(codes) > 10

    def sightings(seed: int) -> list[Any]:
        source = SightingSource(per_minute=6.0, seed=seed, scenarios=codes)
        return [source.next(1.0) for _ in range(600)]

    first = [s for s in sightings(3) if s is not None]
    assert first == [s for s in sightings(3) if s is not None]
    assert 30 <= len(first) <= 100  # about 6 a minute over 10 minutes
    assert all(s.scenario in codes and 0.5 < s.confidence < 1 for s in first)
    assert len({s.media_sha256 for s in first}) == len(first)
    silent = SightingSource(per_minute=0.0, seed=3, scenarios=codes)
    assert all(silent.next(60.0) is None for _ in range(10))


def test_simulated_devices_speak_what_the_codecs_read() -> None:
    """The simulators share no code with the codecs: what they send must decode."""
    reference = load_reference()
    spec = reference.drones[0]
    nest = next(n for n in reference.nests if n.id == spec.home_nest)
    source = SightingSource(per_minute=60.0, seed=1, scenarios=catalogue_codes())
    sighting: Sighting | None = None
    while sighting is None:
        sighting = source.next(1.0)

    dock = SimulatedDock(spec, nest, dock_sn="DOCK1", aircraft_sn="AC1")
    sn, detection = detection_of(parse_envelope(dock.detection_event(sighting)))
    assert (sn, detection.scenario, detection.media.sha256) == (
        "AC1",
        sighting.scenario,
        sighting.media_sha256,
    )

    async def mavlink_halves() -> list[Any]:
        sent: list[Any] = []
        drone = SimulatedMavlinkDrone(spec, nest, system_id=1, gateway=("127.0.0.1", 1))
        drone.send = sent.append  # type: ignore[method-assign,assignment]
        drone.detection(sighting, 1.0, 1_764_900_000_000_000)
        return [wire(message) for message in sent]

    capture, tunnel = asyncio.run(mavlink_halves())
    pair = DetectionPairing()
    assert pair.add_capture(capture_of(capture)) is None  # type: ignore[arg-type]
    paired = pair.add_note(note_of(tunnel))  # type: ignore[arg-type]
    assert paired is not None
    assert paired[1].scenario == sighting.scenario
    assert paired[1].confidence == pytest.approx(sighting.confidence)
    assert paired[1].sha256 == sighting.media_sha256
    assert (paired[0].lon, paired[0].lat) == pytest.approx((nest.lon, nest.lat))
