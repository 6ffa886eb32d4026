"""Prometheus metrics of the protocol gateways, labelled by gateway (mavlink, mqtt)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter(
    "airgrid_gateway_messages_in_total",
    "Device messages decoded (MAVLink messages, MQTT payloads), by gateway and type.",
    ["gateway", "type"],
)
MESSAGES_OUT = Counter(
    "airgrid_gateway_messages_out_total",
    "Messages sent to devices (commands, mission items, service requests), by gateway.",
    ["gateway", "type"],
)
DECODE_ERRORS = Counter(
    "airgrid_gateway_decode_errors_total",
    "Device input that could not be used, by gateway and reason.",
    ["gateway", "reason"],
)
TELEMETRY_FORWARDED = Counter(
    "airgrid_gateway_telemetry_forwarded_total",
    "Telemetry records accepted by the telemetry service.",
    ["gateway"],
)
TELEMETRY_DROPPED = Counter(
    "airgrid_gateway_telemetry_dropped_total",
    "Telemetry records dropped: the bounded buffer overflowed, or the service refused them.",
    ["gateway", "reason"],
)
DETECTIONS_FORWARDED = Counter(
    "airgrid_gateway_detections_forwarded_total",
    "Detections the telemetry service took (valid ones and those it sent to the DLQ).",
    ["gateway"],
)
DETECTIONS_REJECTED = Counter(
    "airgrid_gateway_detections_rejected_total",
    "Detections the telemetry service took but sent to the DLQ, by its reason.",
    ["gateway", "reason"],
)
DETECTIONS_DROPPED = Counter(
    "airgrid_gateway_detections_dropped_total",
    "Detections dropped: the bounded buffer overflowed, or the service refused the batch.",
    ["gateway", "reason"],
)
BUFFERED = Gauge(
    "airgrid_gateway_buffered_records", "Telemetry records waiting for the uplink.", ["gateway"]
)
DEVICES_LINKED = Gauge(
    "airgrid_gateway_devices_linked", "Devices currently heard from (link ok).", ["gateway"]
)
COMMANDS = Counter(
    "airgrid_gateway_commands_total",
    "Air-grid commands handled, by gateway and outcome (accepted, refused, timeout, ...).",
    ["gateway", "outcome"],
)
COMMAND_RTT = Histogram(
    "airgrid_gateway_command_round_trip_seconds",
    "From sending a command to the device's acknowledgement.",
    ["gateway"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NEST_WIND = Gauge("airgrid_gateway_nest_wind_mps", "Wind reported by a dock.", ["nest_id"])
NEST_DRONE_IN_DOCK = Gauge(
    "airgrid_gateway_nest_drone_in_dock",
    "1 when the dock reports its aircraft inside.",
    ["nest_id"],
)
NEST_MODE = Gauge("airgrid_gateway_nest_mode_code", "The dock's DJI mode code.", ["nest_id"])


def serve_metrics(host: str, port: int) -> None:
    """GET /metrics (Prometheus) on its own port, in a daemon thread; 0 disables it."""
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=host)
