"""A simulated DJI-style dock with its aircraft, over MQTT, flown by the twin's physics.

The dock publishes its OSD (mode, position, wind, drone in dock, the aircraft's charge) every
second; the aircraft publishes its OSD at 5 Hz while out of the dock, and now and then, at
`detections_per_minute` of flight (seeded), an `ai_detection` event of its onboard detector on
the dock's `events` topic. `services` requests on
the dock's topic (takeoff_to_point, fly_to_point, fly_to_point_stop, return_home) are obeyed
and answered on `services_reply`. `time_scale` runs the physics faster than the wall clock.

It is meant to check the gateway's codec, so it shares none of it: topics, envelopes and mode
codes come from DJI's Cloud API documents (below).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiomqtt
import orjson

from airgrid.bus import now_ms
from airgrid.reference import DroneSpec, NestSpec
from airgrid.sim.physics import SimDrone, apply_command
from airgrid.v1 import command_pb2, telemetry_pb2
from gateways.simulated_flight import flight_ticks
from gateways.simulated_sightings import Sighting, SightingSource, catalogue_codes

log = logging.getLogger("airgrid.sim.dock")

# Cloud API topics: thing/product/{device_sn}/osd (device properties at a fixed rate),
# .../services (cloud to device requests) and .../services_reply (their results).
_OSD, _SERVICES, _SERVICES_REPLY = "osd", "services", "services_reply"
# .../events carries device events: {tid, bid, timestamp, gateway, method, need_reply, data}.
_EVENTS = "events"
# Aircraft OSD mode_code (Cloud API device properties): 0 standby, 1 take-off preparation,
# 4 automatic take-off, 5 wayline flight (a flight the dock runs), 9 automatic return to
# home, 10 automatic landing.
_AIRCRAFT_MODE_CODE: dict[int, int] = {
    telemetry_pb2.FLIGHT_MODE_DOCKED: 0,
    telemetry_pb2.FLIGHT_MODE_TAKING_OFF: 4,
    telemetry_pb2.FLIGHT_MODE_CRUISING: 5,
    telemetry_pb2.FLIGHT_MODE_HOVERING: 5,
    telemetry_pb2.FLIGHT_MODE_RETURNING: 9,
    telemetry_pb2.FLIGHT_MODE_LANDING: 10,
}
_TAKE_OFF_PREPARATION = 1
# Dock OSD mode_code: 0 idle, 4 working (a flight task in progress).
_DOCK_IDLE, _DOCK_WORKING = 0, 4


def _topic(prefix: str, sn: str, kind: str) -> str:
    return f"{prefix}thing/product/{sn}/{kind}"


# DJI result codes used here: 0 success, 314000 "the device cannot do this now".
RESULT_OK = 0
RESULT_REFUSED = 314000


class SimulatedDock:
    def __init__(
        self,
        spec: DroneSpec,
        nest: NestSpec,
        *,
        dock_sn: str,
        aircraft_sn: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic_prefix: str = "",
        time_scale: float = 1.0,
        wind_mps: float = 3.0,
        detections_per_minute: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.drone = SimDrone.docked_at(spec, nest.id, nest.lon, nest.lat)
        self.nest = nest
        self.dock_sn = dock_sn
        self.aircraft_sn = aircraft_sn
        self.host, self.port = host, port
        self.prefix = topic_prefix
        self.time_scale = time_scale
        self.wind_mps = wind_mps
        self.methods: list[str] = []  # the services methods received, in order
        self.sightings = SightingSource(
            per_minute=detections_per_minute, seed=seed, scenarios=catalogue_codes()
        )
        self.detections_sent = 0
        self._run = f"{now_ms():x}"  # a restarted dock's image indexes start over

    def _envelope(self, data: dict[str, Any], **extra: Any) -> bytes:
        return orjson.dumps(
            {
                "tid": extra.pop("tid", ""),
                "bid": extra.pop("bid", ""),
                "timestamp": now_ms(),
                "data": data,
                **extra,
            }
        )

    def dock_osd(self) -> dict[str, Any]:
        d = self.drone
        in_dock = d.mode == telemetry_pb2.FLIGHT_MODE_DOCKED
        return {
            "mode_code": _DOCK_IDLE if in_dock else _DOCK_WORKING,
            "longitude": self.nest.lon,
            "latitude": self.nest.lat,
            "height": 20.0,
            "wind_speed": self.wind_mps,
            "rainfall": 0,
            "environment_temperature": 21.5,
            "drone_in_dock": 1 if in_dock else 0,
            "sub_device": {"device_sn": self.aircraft_sn, "device_online_status": 1},
            "drone_charge_state": {
                "state": 1 if in_dock and d.battery_pct < 100 else 0,
                "capacity_percent": round(max(0.0, min(100.0, d.battery_pct))),
            },
        }

    def aircraft_osd(self) -> dict[str, Any]:
        d = self.drone
        code = _AIRCRAFT_MODE_CODE.get(d.mode, 0)
        if d.mode == telemetry_pb2.FLIGHT_MODE_TAKING_OFF and d.phase_timer_s > 0:
            code = _TAKE_OFF_PREPARATION
        return {
            "mode_code": code,
            "longitude": d.lon,
            "latitude": d.lat,
            "height": d.alt_m + 20.0,
            "elevation": round(d.alt_m, 2),
            "horizontal_speed": round(d.ground_speed_mps, 2),
            "vertical_speed": round(d.vertical_speed_mps, 2),
            "attitude_head": round(((d.heading_deg + 180.0) % 360.0) - 180.0, 1),
            "battery": {"capacity_percent": round(max(0.0, min(100.0, d.battery_pct)))},
            "wind_speed": round(self.wind_mps * 10),
        }

    def detection_event(self, sighting: Sighting) -> bytes:
        d = self.drone
        return self._envelope(
            {
                "sn": self.aircraft_sn,
                "scenario_code": sighting.scenario,
                "confidence": sighting.confidence,
                "longitude": d.lon,
                "latitude": d.lat,
                "observed_time": now_ms(),
                "media": {
                    "url": f"https://media.sim.invalid/{self.aircraft_sn}/{sighting.media_name}",
                    "sha256": sighting.media_sha256,
                },
                "attributes": sighting.attributes,
            },
            bid=f"{self.aircraft_sn}-{self._run}-{sighting.image_index}",
            tid=f"det-{sighting.image_index}",
            gateway=self.dock_sn,
            method="ai_detection",
            need_reply=0,
        )

    def obey(self, method: str, data: dict[str, Any]) -> bool:
        self.methods.append(method)
        c = command_pb2
        if method == "takeoff_to_point":
            command = c.DroneCommand(
                kind=c.COMMAND_KIND_LAUNCH,
                target_lon=float(data["target_longitude"]),
                target_lat=float(data["target_latitude"]),
                target_alt_m=float(data.get("target_height", 0.0)),
            )
        elif method == "fly_to_point":
            points = data["points"]
            command = c.DroneCommand(
                kind=c.COMMAND_KIND_GOTO,
                target_lon=float(points[-1]["longitude"]),
                target_lat=float(points[-1]["latitude"]),
                target_alt_m=float(points[-1].get("height", 0.0)),
                path_lon=[float(p["longitude"]) for p in points[:-1]],
                path_lat=[float(p["latitude"]) for p in points[:-1]],
            )
        elif method == "fly_to_point_stop":
            command = c.DroneCommand(kind=c.COMMAND_KIND_HOLD)
        elif method == "return_home":
            command = c.DroneCommand(kind=c.COMMAND_KIND_RETURN, nest_id=self.drone.home_nest_id)
        else:
            return False
        return apply_command(self.drone, command)

    async def _serve(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                request = orjson.loads(bytes(message.payload))
                ok = self.obey(str(request["method"]), dict(request.get("data") or {}))
            except Exception as error:
                log.warning("bad services request", extra={"error": repr(error)})
                continue
            reply = self._envelope(
                {"result": RESULT_OK if ok else RESULT_REFUSED},
                tid=request.get("tid", ""),
                bid=request.get("bid", ""),
                method=request.get("method", ""),
            )
            await client.publish(_topic(self.prefix, self.dock_sn, _SERVICES_REPLY), reply, qos=1)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        async with aiomqtt.Client(
            self.host, self.port, identifier=f"sim-dock-{self.dock_sn}"
        ) as client:
            await client.subscribe(_topic(self.prefix, self.dock_sn, _SERVICES), qos=1)
            server = asyncio.create_task(self._serve(client))
            next_dock = next_aircraft = last = loop.time()
            try:
                async for now, changed in flight_ticks(self.drone, stop, self.time_scale):
                    flown_s, last = (now - last) * self.time_scale, now
                    sighting = self.sightings.next(flown_s) if self.drone.airborne else None
                    if sighting is not None:
                        topic = _topic(self.prefix, self.dock_sn, _EVENTS)
                        await client.publish(topic, self.detection_event(sighting), qos=1)
                        self.detections_sent += 1
                    if self.drone.airborne and (now >= next_aircraft or changed):
                        payload = self._envelope(self.aircraft_osd())
                        await client.publish(_topic(self.prefix, self.aircraft_sn, _OSD), payload)
                        next_aircraft = now + 0.2
                    if now >= next_dock or changed:
                        payload = self._envelope(self.dock_osd())
                        await client.publish(_topic(self.prefix, self.dock_sn, _OSD), payload)
                        next_dock = now + 1.0
            finally:
                server.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await server
