"""The AsyncAPI document of every topic: its channel, the protobuf message it carries (linked to
its .proto file), keys, CloudEvents headers and Kafka bindings. Rendered to asyncapi.yaml by
`python -m deploy.generate`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airgrid.topics import ALL_TOPICS, DEPARTMENT_CODES, FEEDS, TELEMETRY_RAW, Topic
from services.telemetry.domain.detections import DetectionReason

# Reasons of the detections DLQ that the telemetry DLQ does not share; both DLQs carry the
# same header.
DETECTION_ONLY_REASONS = [
    r.value
    for r in DetectionReason
    if r.value not in {"malformed", "unknown_drone", "future", "too_old"}
]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto/airgrid/v1"


def _camel(name: str) -> str:
    parts = re.split(r"[._]", name.removeprefix("airgrid."))
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


def _proto_file_of(message: str) -> Path | None:
    short = message.rsplit(".", 1)[-1]
    for path in sorted(PROTO_DIR.glob("*.proto")):
        if re.search(rf"^message {short} \{{", path.read_text(), re.MULTILINE):
            return path
    return None


def _message(topic: Topic) -> tuple[str, dict[str, Any]]:
    name = topic.message.rsplit(".", 1)[-1] if topic.message.startswith("airgrid.") else ""
    headers = {"$ref": "#/components/schemas/CloudEventHeaders"}
    key = {"type": "string", "description": f"Kafka record key: {topic.key}"}
    bindings = {"kafka": {"key": key, "bindingVersion": "0.5.0"}}
    proto = _proto_file_of(topic.message) if name else None
    if proto is not None:
        payload: dict[str, Any] = {
            "schemaFormat": "application/vnd.google.protobuf;version=3",
            "schema": proto.read_text(),
        }
        return name, {
            "name": name,
            "title": topic.message,
            "summary": topic.carries,
            "contentType": topic.content_type,
            "headers": headers,
            "payload": payload,
            "bindings": bindings,
            "x-proto-file": str(proto.relative_to(ROOT)),
        }
    if topic in FEEDS:
        return "FeedItem", {
            "name": "FeedItem",
            "title": "Department feed item",
            "summary": "An incident or mission update, a drone position near the "
            "department's incidents, or an alert (JSON).",
            "contentType": topic.content_type,
            "headers": headers,
            "payload": {"$ref": "#/components/schemas/FeedItem"},
            "bindings": bindings,
        }
    return "RejectedRecord", {
        "name": "RejectedRecord",
        "title": "Rejected record",
        "summary": topic.carries,
        "contentType": topic.content_type,
        "headers": {"$ref": "#/components/schemas/DlqHeaders"},
        "payload": {"type": "string", "format": "binary", "description": "original bytes"},
        "bindings": bindings,
    }


def _channel_binding(topic: Topic) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if "cleanup.policy" in topic.configs:
        config["cleanup.policy"] = topic.configs["cleanup.policy"].split(",")
    if "retention.ms" in topic.configs:
        config["retention.ms"] = int(topic.configs["retention.ms"])
    binding: dict[str, Any] = {"partitions": topic.partitions, "bindingVersion": "0.5.0"}
    if config:
        binding["topicConfiguration"] = config
    return {"kafka": binding}


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    listed = [t for t in ALL_TOPICS if t not in FEEDS] + [FEEDS[0]]
    for topic in listed:
        message_name, message = _message(topic)
        messages[message_name] = message
        feed = topic in FEEDS
        channel_id = "departmentFeed" if feed else _camel(topic.name)
        channel: dict[str, Any] = {
            "address": "airgrid.feed.{department}" if feed else topic.name,
            "title": "Department feed" if feed else topic.name,
            "description": (
                "Each department's data feed, one topic per department code."
                if feed
                else f"{topic.carries}. Key: {topic.key}."
            ),
            "messages": {message_name: {"$ref": f"#/components/messages/{message_name}"}},
            "bindings": _channel_binding(topic),
        }
        if feed:
            channel["parameters"] = {"department": {"$ref": "#/components/parameters/department"}}
        channels[channel_id] = channel
        inbound = topic is TELEMETRY_RAW
        operations[
            ("receive" if inbound else "publish") + channel_id[0].upper() + channel_id[1:]
        ] = {
            "action": "receive" if inbound else "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": (
                "Drones and nest gateways send telemetry; airgrid validates it."
                if inbound
                else f"airgrid publishes {topic.carries}."
            ),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "airgrid event backbone",
            "version": "1.0.0",
            "description": "The Kafka topics of airgrid, the city's shared-drone air grid, for "
            "departments' integrators. Generated from the topic table (airgrid/topics.py) by "
            "`python -m deploy.generate`; tests fail when it drifts. Every record carries "
            "CloudEvents attributes in the Kafka binary binding (ce_* headers).",
        },
        "defaultContentType": "application/x-protobuf",
        "servers": {
            "production": {
                "host": "airgrid-kafka-bootstrap:9092",
                "protocol": "kafka",
                "description": "The Strimzi cluster of deploy/k8s (AIRGRID_KAFKA_BOOTSTRAP).",
            },
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded broker of `airgrid up`.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "department": {
                    "description": "A department code (SPEC §1).",
                    "enum": list(DEPARTMENT_CODES),
                }
            },
            "schemas": {
                "CloudEventHeaders": {
                    "type": "object",
                    "required": ["ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
                    "properties": {
                        "ce_specversion": {"type": "string", "const": "1.0"},
                        "ce_id": {"type": "string", "description": "Consumers dedupe on it."},
                        "ce_source": {"type": "string", "examples": ["airgrid/dispatch"]},
                        "ce_type": {"type": "string", "examples": ["airgrid.alert"]},
                        "ce_time": {"type": "string", "format": "date-time"},
                        "content-type": {"type": "string"},
                    },
                },
                "DlqHeaders": {
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEventHeaders"},
                        {
                            "type": "object",
                            "required": ["airgrid_reason"],
                            "properties": {
                                "airgrid_reason": {
                                    "type": "string",
                                    "description": "Why the record was rejected.",
                                    "enum": [
                                        "malformed",
                                        "unknown_drone",
                                        "out_of_range",
                                        "future",
                                        "too_old",
                                        "duplicate",
                                        "out_of_order",
                                        "implausible_move",
                                        *DETECTION_ONLY_REASONS,
                                    ],
                                }
                            },
                        },
                    ]
                },
                "FeedItem": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "description": "The item's event type."},
                        "lon": {"type": "number"},
                        "lat": {"type": "number"},
                    },
                    "additionalProperties": True,
                },
            },
            "messages": messages,
        },
    }
