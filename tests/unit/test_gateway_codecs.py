"""The gateways' pure parts: MAVLink and DJI Cloud API mappings, bad input, and commands."""

from __future__ import annotations

import orjson
import pytest
from pymavlink.dialects.v20 import common as mavlink

from airgrid.reference import load_reference
from airgrid.v1 import command_pb2, telemetry_pb2
from gateways.airgrid_link import RegisteredDrone
from gateways.dji_codec import (
    PayloadError,
    aircraft_report,
    dock_report,
    end_point,
    parse_envelope,
    parse_topic,
    service_calls,
)
from gateways.mavlink_codec import (
    DroneReport,
    flight_command_of,
    flight_mode_of,
    fold,
    plan_of,
    px4_custom_mode,
    telemetry_of,
)
from gateways.mavlink_gateway import MavlinkGateway
from gateways.mqtt_gateway import MqttGateway

F = telemetry_pb2
ARMED = mavlink.MAV_MODE_FLAG_SAFETY_ARMED | mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
DRONE = RegisteredDrone("drone-001", "nest-01", 120.0)


def test_px4_modes_map_to_flight_modes() -> None:
    assert flight_mode_of(0, px4_custom_mode(4)) == F.FLIGHT_MODE_DOCKED  # disarmed
    assert flight_mode_of(ARMED, px4_custom_mode(2)) == F.FLIGHT_MODE_TAKING_OFF
    assert flight_mode_of(ARMED, px4_custom_mode(4)) == F.FLIGHT_MODE_CRUISING
    assert flight_mode_of(ARMED, px4_custom_mode(3)) == F.FLIGHT_MODE_HOVERING
    assert flight_mode_of(ARMED, px4_custom_mode(5)) == F.FLIGHT_MODE_RETURNING
    assert flight_mode_of(ARMED, px4_custom_mode(6)) == F.FLIGHT_MODE_LANDING


def test_messages_fold_into_one_record() -> None:
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    report = DroneReport()
    assert not fold(report, mav.heartbeat_encode(2, 12, ARMED, px4_custom_mode(4), 4))
    assert fold(
        report,
        mav.global_position_int_encode(0, 304800000, 1144100000, 0, 120500, 300, 400, -200, 9000),
    )
    assert telemetry_of(report, drone_id="d", seq=1, now_ms=5, nest_id="n", mission_id="") is None
    assert not fold(report, mav.sys_status_encode(1, 1, 1, 0, 0, 0, 87, 0, 0, 0, 0, 0, 0))
    record = telemetry_of(report, drone_id="d", seq=1, now_ms=5, nest_id="n", mission_id="m")
    assert record is not None
    assert (record.lat, record.lon, record.alt_m) == (30.48, 114.41, 120.5)
    assert record.ground_speed_mps == 5.0 and record.vertical_speed_mps == 2.0
    assert record.heading_deg == 90.0 and record.battery_pct == 87.0
    assert record.flight_mode == F.FLIGHT_MODE_CRUISING and record.mission_id == "m"


def test_launch_becomes_a_mission_the_twin_reads_back() -> None:
    command = command_pb2.DroneCommand(
        kind=command_pb2.COMMAND_KIND_LAUNCH,
        target_lon=114.42,
        target_lat=30.49,
        hold_seconds=60,
        path_lon=[114.415],
        path_lat=[30.485],
    )
    plan = plan_of(command, cruise_alt_m=100.0)
    assert plan is not None and plan.command is None
    kinds = [item.command for item in plan.mission]
    assert kinds == [
        mavlink.MAV_CMD_NAV_TAKEOFF,
        mavlink.MAV_CMD_NAV_WAYPOINT,
        mavlink.MAV_CMD_NAV_WAYPOINT,
        mavlink.MAV_CMD_NAV_LOITER_TIME,
        mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH,
    ]
    flown = flight_command_of(list(plan.mission), airborne=False)
    assert flown.kind == command_pb2.COMMAND_KIND_LAUNCH
    assert (flown.target_lon, flown.target_lat, flown.hold_seconds) == (114.42, 30.49, 60)
    assert list(flown.path_lon) == [114.415] and flown.target_alt_m == 100.0


def test_a_relocation_lands_at_the_nest_it_names_and_a_dock_refuses_it() -> None:
    relocate = command_pb2.DroneCommand(
        kind=command_pb2.COMMAND_KIND_LAUNCH, target_lon=114.42, target_lat=30.49,
        nest_id="nest-02", path_lon=[114.415], path_lat=[30.485],
    )  # fmt: skip
    plan = plan_of(relocate, cruise_alt_m=100.0)
    assert plan is not None
    assert [item.command for item in plan.mission] == [
        mavlink.MAV_CMD_NAV_TAKEOFF,
        mavlink.MAV_CMD_NAV_WAYPOINT,
        mavlink.MAV_CMD_NAV_WAYPOINT,
        mavlink.MAV_CMD_NAV_LAND,
    ]
    assert (plan.mission[-1].lat, plan.mission[-1].lon) == (30.49, 114.42)
    assert service_calls(relocate, cruise_alt_m=100.0) is None


def test_hold_and_return_are_command_long() -> None:
    hold = plan_of(command_pb2.DroneCommand(kind=command_pb2.COMMAND_KIND_HOLD), cruise_alt_m=1)
    back = plan_of(command_pb2.DroneCommand(kind=command_pb2.COMMAND_KIND_RETURN), cruise_alt_m=1)
    assert hold is not None and hold.command is not None
    assert hold.command.command == mavlink.MAV_CMD_DO_SET_MODE
    assert back is not None and back.command is not None
    assert back.command.command == mavlink.MAV_CMD_NAV_RETURN_TO_LAUNCH
    assert plan_of(command_pb2.DroneCommand(kind=99), cruise_alt_m=1) is None  # type: ignore[arg-type]


def test_mavlink_gateway_admits_only_mapped_registered_vehicles_and_survives_junk() -> None:
    records: list[telemetry_pb2.Telemetry] = []
    registered: dict[str, RegisteredDrone] = {}
    gateway = MavlinkGateway(
        systems={1: DRONE.id}, registered=lambda: registered, submit=records.append
    )
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    frames = [
        mav.heartbeat_encode(2, 12, 0, 0, 3).pack(mav),
        mav.sys_status_encode(1, 1, 1, 0, 0, 0, 90, 0, 0, 0, 0, 0, 0).pack(mav),
        mav.global_position_int_encode(0, 304800000, 1144100000, 0, 0, 0, 0, 0, 0).pack(mav),
    ]
    for frame in frames:
        gateway.datagram_received(frame, ("127.0.0.1", 1))
    assert records == [] and gateway.peers == {}  # not registered yet: not admitted
    registered[DRONE.id] = DRONE
    broken = bytearray(frames[2])
    broken[-2] ^= 0xFF
    for junk in (b"\xfd\xff" + b"\x00" * 40, bytes(broken), b"", b"\xfd"):
        gateway.datagram_received(junk, ("127.0.0.1", 1))
    stranger = mavlink.MAVLink(None, srcSystem=42, srcComponent=1)
    gateway.datagram_received(
        stranger.heartbeat_encode(2, 12, 0, 0, 3).pack(stranger), ("127.0.0.1", 2)
    )
    for frame in frames:
        gateway.datagram_received(frame, ("127.0.0.1", 1))
    assert [r.drone_id for r in records] == [DRONE.id]
    assert records[0].flight_mode == F.FLIGHT_MODE_DOCKED and records[0].nest_id == "nest-01"
    assert set(gateway._errors) >= {
        "unregistered_drone",
        "unknown_system_id",
        "bad_crc",
        "truncated_frame",
    }


def test_mavlink_link_is_lost_after_five_missed_heartbeats() -> None:
    now = [0.0]
    records: list[telemetry_pb2.Telemetry] = []
    gateway = MavlinkGateway(
        systems={1: DRONE.id},
        registered=lambda: {DRONE.id: DRONE},
        submit=records.append,
        clock=lambda: now[0],
    )
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    for message in (
        mav.heartbeat_encode(2, 12, 0, 0, 3),
        mav.sys_status_encode(1, 1, 1, 0, 0, 0, 90, 0, 0, 0, 0, 0, 0),
        mav.global_position_int_encode(0, 304800000, 1144100000, 0, 0, 0, 0, 0, 0),
    ):
        gateway.datagram_received(message.pack(mav), ("127.0.0.1", 1))
    now[0] = 4.9
    gateway.check_links()
    assert gateway.peers[1].linked
    now[0] = 5.1
    gateway.check_links()
    assert not gateway.peers[1].linked
    assert "mavlink_link_lost" in records[-1].faults
    gateway.datagram_received(mav.heartbeat_encode(2, 12, 0, 0, 3).pack(mav), ("127.0.0.1", 1))
    assert gateway.peers[1].linked


def envelope(data: object, **extra: object) -> bytes:
    return orjson.dumps({"tid": "t", "bid": "b", "timestamp": 1, "data": data, **extra})


AIRCRAFT = {
    "mode_code": 5,
    "longitude": 114.41,
    "latitude": 30.48,
    "height": 140.0,
    "elevation": 120.0,
    "horizontal_speed": 12.0,
    "vertical_speed": 0.0,
    "attitude_head": -90.0,
    "battery": {"capacity_percent": 80},
    "wind_speed": 45,
}


def test_dji_topics_and_envelopes() -> None:
    assert parse_topic("p/thing/product/SN1/osd", "p/") == ("SN1", "osd")
    assert parse_topic("thing/product/SN1/osd", "p/") is None
    assert parse_topic("p/thing/other/SN1/osd", "p/") is None
    assert parse_envelope(envelope({"a": 1})).data == {"a": 1}
    for payload, reason in (
        (b"not json", "not_json"),
        (b"[1]", "not_object"),
        (b'{"tid": "t", "bid": "b", "data": {}}', "missing_field"),
        (envelope([1]), "bad_field"),
        (b'{"tid": "t", "bid": "b", "timestamp": "x", "data": {}}', "bad_field"),
    ):
        with pytest.raises(PayloadError) as caught:
            parse_envelope(payload)
        assert caught.value.reason == reason


def test_aircraft_and_dock_fields() -> None:
    report = aircraft_report(AIRCRAFT)
    assert report.heading_deg == 270.0 and report.wind_mps == 4.5 and report.battery_pct == 80
    assert report.flight_mode(in_dock=False) == F.FLIGHT_MODE_CRUISING
    hovering = aircraft_report({**AIRCRAFT, "horizontal_speed": 0.1})
    assert hovering.flight_mode(in_dock=False) == F.FLIGHT_MODE_HOVERING
    assert (
        aircraft_report({**AIRCRAFT, "mode_code": 9}).flight_mode(in_dock=False)
        == F.FLIGHT_MODE_RETURNING
    )
    assert aircraft_report({**AIRCRAFT, "mode_code": 14}).flight_mode(in_dock=False) is None
    parked = aircraft_report({**AIRCRAFT, "mode_code": 0, "elevation": 0.0})
    assert parked.flight_mode(in_dock=True) == F.FLIGHT_MODE_DOCKED
    for broken in (
        {**AIRCRAFT, "latitude": None},
        {**AIRCRAFT, "battery": 5},
        {**AIRCRAFT, "elevation": "x"},
    ):
        with pytest.raises(PayloadError):
            aircraft_report(broken)
    dock = dock_report(
        {
            "mode_code": 0,
            "longitude": 114.4,
            "latitude": 30.4,
            "wind_speed": 7.5,
            "drone_in_dock": 1,
            "sub_device": {"device_sn": "AC1"},
            "drone_charge_state": {"capacity_percent": 64, "state": 1},
        }
    )
    assert dock.online and dock.drone_in_dock and dock.aircraft_sn == "AC1"
    assert dock.aircraft_battery_pct == 64 and dock.wind_mps == 7.5


def test_commands_become_services_requests() -> None:
    launch = command_pb2.DroneCommand(
        command_id="c1",
        kind=command_pb2.COMMAND_KIND_LAUNCH,
        target_lon=114.42,
        target_lat=30.49,
        path_lon=[114.415],
        path_lat=[30.485],
    )
    calls = service_calls(launch, cruise_alt_m=110.0)
    assert calls is not None
    assert [c.method for c in calls] == ["takeoff_to_point", "fly_to_point"]
    assert end_point(calls[0]) == (114.415, 30.485)
    assert end_point(calls[1]) == (114.42, 30.49)
    assert calls[0].data["target_height"] == 110.0
    for kind, method in (
        (command_pb2.COMMAND_KIND_GOTO, "fly_to_point"),
        (command_pb2.COMMAND_KIND_HOLD, "fly_to_point_stop"),
        (command_pb2.COMMAND_KIND_RETURN, "return_home"),
    ):
        found = service_calls(command_pb2.DroneCommand(kind=kind), cruise_alt_m=1)
        assert found is not None and found[0].method == method


def test_mqtt_gateway_counts_bad_payloads_and_admits_registered_aircraft() -> None:
    records: list[telemetry_pb2.Telemetry] = []
    registered: dict[str, RegisteredDrone] = {}
    gateway = MqttGateway(
        docks={"DOCK1": "nest-01"},
        aircraft={"AC1": DRONE.id},
        registered=lambda: registered,
        submit=records.append,
        topic_prefix="x/",
    )
    gateway.handle("x/thing/product/AC1/osd", envelope(AIRCRAFT))
    assert records == []  # not registered yet
    registered[DRONE.id] = DRONE
    for topic, payload in (
        ("x/thing/product/AC1/osd", b"\xff\xfe"),
        ("x/thing/product/AC1/osd", envelope({"mode_code": 5})),
        ("x/nothing", envelope(AIRCRAFT)),
        ("x/thing/product/DOCK1/osd", envelope({"mode_code": 0})),
    ):
        gateway.handle(topic, payload)
    gateway.handle("x/thing/product/AC1/osd", envelope(AIRCRAFT))
    assert [r.drone_id for r in records] == [DRONE.id]
    assert records[0].flight_mode == F.FLIGHT_MODE_CRUISING and records[0].alt_m == 120.0
    assert set(gateway._errors) >= {
        "unknown_device",
        "not_json",
        "missing_field",
        "unexpected_topic",
    }


def test_reference_drones_have_what_the_gateways_need() -> None:
    assert all(d.cruise_altitude_m > 0 for d in load_reference().drones)
