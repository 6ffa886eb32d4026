"""`airgrid gateway`: the protocol gateways (MAVLink, DJI-style MQTT) and their simulated
fleets."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any

import typer

from airgrid.config import get_settings
from entrypoints.commands.fail import fail

gateway_app = typer.Typer(
    help="Protocol gateways that bring real drones and nests into the air grid.",
    no_args_is_help=True,
)


GATEWAY_KEY_HELP = (
    "Gateway credential (POST /v1/credentials role=gateway); env AIRGRID_GATEWAY_KEY."
)


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        fail(f"{what} {value!r} must be HOST:PORT, e.g. 127.0.0.1:14550")
    return host, int(port)


def _run_gateway(main: Coroutine[Any, Any, None]) -> None:
    from airgrid.bus import BrokerUnavailable
    from gateways.airgrid_link import GatewayRefused

    try:
        asyncio.run(main)
    except (GatewayRefused, BrokerUnavailable) as error:
        fail(str(error))
    except KeyboardInterrupt:
        pass


@gateway_app.command("mavlink")
def gateway_mavlink(
    key: Annotated[str, typer.Option(envvar="AIRGRID_GATEWAY_KEY", help=GATEWAY_KEY_HELP)],
    system: Annotated[
        list[str],
        typer.Option(
            envvar="AIRGRID_MAVLINK_SYSTEMS",
            help="SYSTEM_ID=DRONE_ID, once per vehicle (env: space-separated).",
        ),
    ],
    listen: Annotated[
        str, typer.Option(envvar="AIRGRID_MAVLINK_LISTEN", help="UDP HOST:PORT to listen on.")
    ] = "0.0.0.0:14550",
    metrics_port: Annotated[
        int, typer.Option(envvar="AIRGRID_GATEWAY_METRICS_PORT", help="/metrics port; 0: off.")
    ] = 9108,
    buffer: Annotated[
        int, typer.Option(help="Telemetry records buffered through outages.")
    ] = 20_000,
) -> None:
    """MAVLink 2 drones over UDP into the air grid; commands back as MAVLink."""
    from airgrid.observability import configure_logging
    from airgrid.tracing import configure_tracing
    from gateways.app import GatewayOptions, parse_pairs, run_mavlink

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, "gateway-mavlink")
    configure_tracing(settings, "gateway-mavlink")
    try:
        pairs = parse_pairs(system, "--system")
        systems = {int(sid): drone for sid, drone in pairs.items()}
    except ValueError as error:
        fail(f"{error}; use --system 1=drone-001 (system ids are numbers 1-255)")
    options = GatewayOptions(key=key, metrics_port=metrics_port, buffer_records=buffer)
    address = _host_port(listen, "--listen")
    _run_gateway(run_mavlink(settings, options, listen=address, systems=systems))


@gateway_app.command("mqtt")
def gateway_mqtt(
    key: Annotated[str, typer.Option(envvar="AIRGRID_GATEWAY_KEY", help=GATEWAY_KEY_HELP)],
    dock: Annotated[list[str], typer.Option(help="DOCK_SN=NEST_ID, once per dock.")],
    aircraft: Annotated[
        list[str] | None,
        typer.Option(help="AIRCRAFT_SN=DRONE_ID; unmapped serials are taken as drone ids."),
    ] = None,
    broker: Annotated[
        str, typer.Option(envvar="AIRGRID_MQTT_BROKER", help="MQTT broker HOST:PORT.")
    ] = "127.0.0.1:1883",
    topic_prefix: Annotated[
        str, typer.Option(envvar="AIRGRID_MQTT_TOPIC_PREFIX", help="Before thing/product/...")
    ] = "",
    metrics_port: Annotated[
        int, typer.Option(envvar="AIRGRID_GATEWAY_METRICS_PORT", help="/metrics port; 0: off.")
    ] = 9109,
    buffer: Annotated[
        int, typer.Option(help="Telemetry records buffered through outages.")
    ] = 20_000,
) -> None:
    """DJI-Cloud-API-style docks and aircraft over MQTT into the air grid; commands back as
    `services` requests."""
    from airgrid.observability import configure_logging
    from airgrid.tracing import configure_tracing
    from gateways.app import GatewayOptions, parse_pairs, run_mqtt

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format, "gateway-mqtt")
    configure_tracing(settings, "gateway-mqtt")
    try:
        docks = parse_pairs(dock, "--dock")
        crafts = parse_pairs(aircraft or [], "--aircraft")
    except ValueError as error:
        fail(f"{error}; use --dock DOCK_SN=nest-01 --aircraft AIRCRAFT_SN=drone-001")
    options = GatewayOptions(key=key, metrics_port=metrics_port, buffer_records=buffer)
    address = _host_port(broker, "--broker")
    _run_gateway(
        run_mqtt(
            settings,
            options,
            broker=address,
            docks=docks,
            aircraft=crafts,
            topic_prefix=topic_prefix,
        )
    )


@gateway_app.command("simulate")
def gateway_simulate(
    protocol: Annotated[str, typer.Argument(help="mavlink or mqtt")],
    nest: Annotated[list[str], typer.Option(help="Simulate the drones of this nest (repeat).")],
    target: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the MAVLink gateway or of the MQTT broker."),
    ] = None,
    topic_prefix: Annotated[str, typer.Option(help="MQTT topic prefix.")] = "",
    time_scale: Annotated[float, typer.Option(help="Physics speed-up (1 = real time).")] = 1.0,
    detections_per_minute: Annotated[
        float, typer.Option(help="Detections per drone per minute of flight (0: none).")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the simulated detectors.")] = 1,
) -> None:
    """The twin's drones speaking MAVLink or the DJI Cloud API, for a demo through a gateway."""
    from gateways.simulated_fleet import drones_of, run_simulated

    if protocol not in ("mavlink", "mqtt"):
        fail(f"unknown protocol {protocol!r}; choose mavlink or mqtt")
    default = "127.0.0.1:14550" if protocol == "mavlink" else "127.0.0.1:1883"
    address = _host_port(target or default, "--target")
    try:
        drones = drones_of(nest, get_settings().reference_data)
    except ValueError as error:
        fail(str(error))
    if not drones:
        fail("those nests have no drones")
    try:
        asyncio.run(
            run_simulated(
                protocol,
                drones,
                target=address,
                topic_prefix=topic_prefix,
                time_scale=time_scale,
                detections_per_minute=detections_per_minute,
                seed=seed,
                echo=typer.echo,
            )
        )
    except KeyboardInterrupt:
        pass
