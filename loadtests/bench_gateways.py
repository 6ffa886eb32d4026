"""`airgrid bench gateways`: each gateway's ingest path against its bare decode loop, on the
same input in the same run.

MAVLink: datagrams from simulated vehicles (HEARTBEAT, GLOBAL_POSITION_INT at 5x, SYS_STATUS,
BATTERY_STATUS, OPEN_DRONE_ID_LOCATION); the baseline is pymavlink's parse loop alone, the
gateway is parse → admit → fold → telemetry record → the uplink's TelemetryBatch encoding.
MQTT: aircraft OSD envelopes; the baseline is a `json.loads` loop, the gateway is topic →
envelope → fields → record → batch encoding. Network I/O (UDP, the broker, the HTTP uplink)
is left out of both, so the ratio is the gateway's own cost per message.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from pymavlink.dialects.v20 import common as mavlink

from airgrid.reference import load_reference
from airgrid.v1 import telemetry_pb2
from gateways.airgrid_link import UPLINK_BATCH, RegisteredDrone
from gateways.dji_codec import OSD, topic_of
from gateways.mavlink_codec import px4_custom_mode
from gateways.mavlink_gateway import MavlinkGateway
from gateways.mqtt_gateway import MqttGateway

REPEATS = 3


@dataclass(frozen=True)
class BenchConfig:
    frames: int = 50_000
    payloads: int = 50_000
    vehicles: int = 50


def _mavlink_input(cfg: BenchConfig) -> list[tuple[bytes, tuple[str, int]]]:
    """One datagram per message, round-robin over the vehicles, in a realistic mix."""
    out: list[tuple[bytes, tuple[str, int]]] = []
    encoders = [mavlink.MAVLink(None, srcSystem=i + 1, srcComponent=1) for i in range(cfg.vehicles)]
    i = 0
    while len(out) < cfg.frames:
        for v, mav in enumerate(encoders):
            addr = ("127.0.0.1", 20_000 + v)
            lat, lon = round((30.48 + v * 1e-3) * 1e7), round((114.41 + i * 1e-6) * 1e7)
            armed = mavlink.MAV_MODE_FLAG_SAFETY_ARMED | mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
            messages = [
                mav.heartbeat_encode(2, 12, armed, px4_custom_mode(4), 4),
                *(
                    mav.global_position_int_encode(i, lat, lon, 140_000, 120_000, 1500, 0, 0, 9000)
                    for _ in range(5)
                ),
                mav.sys_status_encode(1, 1, 1, 300, 15800, 900, 87, 0, 0, 0, 0, 0, 0),
                mav.battery_status_encode(0, 0, 1, 2500, [3950] * 10, 900, -1, -1, 87),
                mav.open_drone_id_location_encode(
                    0, 0, [0] * 20, 2, 9000, 1500, 0, lat, lon, 140, 140, 0, 120, 0, 0, 0, 0, 0, 0
                ),
            ]
            out.extend((m.pack(mav), addr) for m in messages)
        i += 1
    return out[: cfg.frames]


def _mqtt_input(cfg: BenchConfig) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for n in range(cfg.payloads):
        v = n % cfg.vehicles
        data = {
            "mode_code": 5,
            "longitude": 114.41 + n * 1e-7,
            "latitude": 30.48 + v * 1e-3,
            "height": 140.0,
            "elevation": 120.0,
            "horizontal_speed": 15.0,
            "vertical_speed": 0.0,
            "attitude_head": 90.0,
            "battery": {"capacity_percent": 87},
            "wind_speed": 30,
        }
        body = {"tid": f"t{n}", "bid": f"b{n}", "timestamp": 1_700_000_000_000 + n, "data": data}
        out.append((topic_of(f"AC{v:04d}", OSD), orjson.dumps(body)))
    return out


def _best_rate(count: int, once: Callable[[], None]) -> float:
    rates = []
    for _ in range(REPEATS):
        # CPU time of this process: the machine is shared, and both loops are single-threaded.
        started = time.process_time()
        once()
        rates.append(count / (time.process_time() - started))
    return statistics.median(rates)


def _encode_batches(records: list[telemetry_pb2.Telemetry]) -> None:
    for start in range(0, len(records), UPLINK_BATCH):
        telemetry_pb2.TelemetryBatch(
            records=records[start : start + UPLINK_BATCH]
        ).SerializeToString()


def _registered(cfg: BenchConfig) -> dict[str, RegisteredDrone]:
    drones = load_reference().drones
    return {
        drones[v % len(drones)].id: RegisteredDrone(drones[v % len(drones)].id, "nest-01", 120.0)
        for v in range(cfg.vehicles)
    }


def bench_mavlink(cfg: BenchConfig) -> tuple[float, float, int]:
    datagrams = _mavlink_input(cfg)
    registered = _registered(cfg)
    ids = list(registered)
    systems = {v + 1: ids[v % len(ids)] for v in range(cfg.vehicles)}

    def bare() -> None:
        parsers: dict[tuple[str, int], mavlink.MAVLink] = {}
        for data, addr in datagrams:
            parser = parsers.get(addr)
            if parser is None:
                parser = parsers[addr] = mavlink.MAVLink(None, 255, 190)
                parser.robust_parsing = True
            parser.parse_buffer(data)

    produced: list[int] = []

    def gateway() -> None:
        records: list[telemetry_pb2.Telemetry] = []
        gw = MavlinkGateway(systems=systems, registered=lambda: registered, submit=records.append)
        for data, addr in datagrams:
            gw.datagram_received(data, addr)
        _encode_batches(records)
        produced.append(len(records))

    return _best_rate(len(datagrams), bare), _best_rate(len(datagrams), gateway), produced[-1]


def bench_mqtt(cfg: BenchConfig) -> tuple[float, float, int]:
    messages = _mqtt_input(cfg)
    registered = _registered(cfg)
    ids = list(registered)
    aircraft = {f"AC{v:04d}": ids[v % len(ids)] for v in range(cfg.vehicles)}

    def bare() -> None:
        for _, payload in messages:
            json.loads(payload)

    produced: list[int] = []

    def gateway() -> None:
        records: list[telemetry_pb2.Telemetry] = []
        gw = MqttGateway(
            docks={}, aircraft=aircraft, registered=lambda: registered, submit=records.append
        )
        for topic, payload in messages:
            gw.handle(topic, payload)
        _encode_batches(records)
        produced.append(len(records))

    return _best_rate(len(messages), bare), _best_rate(len(messages), gateway), produced[-1]


def run(cfg: BenchConfig, echo: Callable[[str], None]) -> None:
    echo(
        f"airgrid bench gateways: {cfg.frames:,} MAVLink datagrams and {cfg.payloads:,} MQTT "
        f"payloads over {cfg.vehicles} vehicles; median of {REPEATS} runs each, "
        "rates per CPU-second"
    )
    bare, full, records = bench_mavlink(cfg)
    echo(f"  MAVLink bare pymavlink parse loop   {bare:>12,.0f} messages/s")
    echo(f"  MAVLink gateway ingest path         {full:>12,.0f} messages/s  ({records:,} records)")
    echo(f"  ratio gateway/bare                  {full / bare:>12.2f}")
    bare, full, records = bench_mqtt(cfg)
    echo(f"  MQTT bare json.loads loop           {bare:>12,.0f} payloads/s")
    echo(f"  MQTT gateway ingest path            {full:>12,.0f} payloads/s  ({records:,} records)")
    echo(f"  ratio gateway/bare                  {full / bare:>12.2f}")
