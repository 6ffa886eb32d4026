"""Composition root of the gateways: the air-grid link, the protocol endpoint, /metrics, and
the loops that run until Ctrl-C (or `stop`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from airgrid.config import Settings
from airgrid.v1 import command_pb2
from gateways.airgrid_link import AirgridLink, LinkConfig
from gateways.mavlink_gateway import MavlinkGateway
from gateways.metrics import serve_metrics
from gateways.mqtt_gateway import MqttGateway

log = logging.getLogger("airgrid.gateway")


@dataclass(frozen=True)
class GatewayOptions:
    key: str
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    buffer_records: int = 20_000
    registry_refresh_s: float = 10.0


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`A=B` options into a dict; a ValueError names the bad one."""
    result: dict[str, str] = {}
    for pair in pairs:
        left, sep, right = pair.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise ValueError(f"{what} {pair!r} is not of the form KEY=VALUE")
        result[left.strip()] = right.strip()
    return result


def _link(settings: Settings, options: GatewayOptions, gateway: str, group: str) -> AirgridLink:
    return AirgridLink(
        settings,
        LinkConfig(
            gateway=gateway,
            key=options.key,
            registry_url=settings.url_of("registry"),
            telemetry_url=settings.url_of("telemetry"),
            consumer_group=group,
            buffer_records=options.buffer_records,
            registry_refresh_s=options.registry_refresh_s,
        ),
    )


def _stop_on_signals(stop: asyncio.Event) -> None:
    # Python delivers signals only to the main thread, and a loop may only take handlers
    # there: a gateway run on another thread's loop (as in tests) is stopped by `stop` alone.
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_mavlink(
    settings: Settings,
    options: GatewayOptions,
    *,
    listen: tuple[str, int],
    systems: Mapping[int, str],
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    group = "airgrid-gateway-mavlink-" + "-".join(sorted(set(systems.values())))[:100]
    link = _link(settings, options, "mavlink", group)

    async def outcome(command: command_pb2.DroneCommand, delivered: bool, reason: str) -> None:
        await link.publish_outcome(command, delivered=delivered, reason=reason)

    gateway = MavlinkGateway(
        systems=systems,
        registered=lambda: link.drones,
        submit=link.submit,
        submit_detection=link.submit_detection,
        outcome=outcome,
    )
    link.serves = gateway.serves
    await link.start()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: gateway, local_addr=listen
    )
    serve_metrics(options.metrics_host, options.metrics_port)
    log.info(
        "MAVLink gateway listening",
        extra={
            "listen": f"udp://{listen[0]}:{listen[1]}",
            "systems": len(systems),
            "registered": len(link.drones),
            "metrics_port": options.metrics_port,
        },
    )
    watcher = asyncio.create_task(gateway.watch_links(stop))
    try:
        await link.run(gateway.deliver, stop)
    finally:
        stop.set()
        watcher.cancel()
        transport.close()
        await link.stop()


async def run_mqtt(
    settings: Settings,
    options: GatewayOptions,
    *,
    broker: tuple[str, int],
    docks: Mapping[str, str],
    aircraft: Mapping[str, str],
    topic_prefix: str = "",
    stop: asyncio.Event | None = None,
) -> None:
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    name = "-".join(sorted(docks.values()))[:100] or "all"
    link = _link(settings, options, "mqtt", f"airgrid-gateway-mqtt-{name}")

    async def outcome(command: command_pb2.DroneCommand, delivered: bool, reason: str) -> None:
        await link.publish_outcome(command, delivered=delivered, reason=reason)

    gateway = MqttGateway(
        docks=docks,
        aircraft=aircraft,
        registered=lambda: link.drones,
        submit=link.submit,
        submit_detection=link.submit_detection,
        outcome=outcome,
        topic_prefix=topic_prefix,
    )
    link.serves = gateway.serves
    await link.start()
    serve_metrics(options.metrics_host, options.metrics_port)
    log.info(
        "MQTT gateway started",
        extra={
            "broker": f"{broker[0]}:{broker[1]}",
            "docks": len(docks),
            "topic_prefix": topic_prefix,
            "registered": len(link.drones),
            "metrics_port": options.metrics_port,
        },
    )
    tasks = [
        asyncio.create_task(gateway.run(*broker, stop, client_id=f"airgrid-gateway-{name}")),
        asyncio.create_task(gateway.watch_docks(stop)),
    ]
    try:
        await link.run(gateway.deliver, stop)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.stop()
