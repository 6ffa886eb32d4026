"""The one topic table: every Kafka topic with its key, payload, partitions and configs."""

from __future__ import annotations

from dataclasses import dataclass, field

DEPARTMENT_CODES: tuple[str, ...] = (
    "fire",
    "traffic",
    "environment",
    "emergency",
    "police",
    "urban",
    "water",
    "resources",
    "construction",
    "parks",
    "health",
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass(frozen=True)
class Topic:
    """A topic as declared once; start-up creation, AsyncAPI and k8s come from this."""

    name: str
    key: str
    carries: str
    content_type: str
    message: str
    partitions: int = 6
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return self.configs.get("cleanup.policy") == "compact"


_WEEK_MS = str(7 * 24 * 3600 * 1000)
_DAY_MS = str(24 * 3600 * 1000)

TELEMETRY_RAW = Topic(
    "airgrid.telemetry.raw",
    key="drone id",
    carries="telemetry from drones and gateways",
    content_type=PROTOBUF,
    message="airgrid.v1.Telemetry",
    partitions=12,
    configs={"retention.ms": _DAY_MS},
)
TELEMETRY_DLQ = Topic(
    "airgrid.telemetry.dlq",
    key="drone id if known",
    carries="rejected raw records, original bytes kept, reason in the airgrid_reason header",
    content_type="application/octet-stream",
    message="original bytes",
    partitions=3,
    configs={"retention.ms": _WEEK_MS},
)
DRONE_STATE = Topic(
    "airgrid.drone.state",
    key="drone id",
    carries="latest state per drone",
    content_type=PROTOBUF,
    message="airgrid.v1.DroneState",
    partitions=12,
    configs={"cleanup.policy": "compact"},
)
REGISTRY_CHANGES = Topic(
    "airgrid.registry.changes",
    key="entity id",
    carries="registry changes",
    content_type=PROTOBUF,
    message="airgrid.v1.RegistryChange",
    partitions=3,
    configs={"cleanup.policy": "compact"},
)
INCIDENTS = Topic(
    "airgrid.incidents",
    key="incident id",
    carries="accepted incidents and cancellations, written from a transactional outbox",
    content_type=PROTOBUF,
    message="airgrid.v1.IncidentEvent",
    partitions=6,
    configs={"retention.ms": _WEEK_MS},
)
DISPATCH_DECISIONS = Topic(
    "airgrid.dispatch.decisions",
    key="incident id",
    carries="assignments, queueing, preemptions, re-dispatches",
    content_type=PROTOBUF,
    message="airgrid.v1.DispatchDecision",
    partitions=6,
    configs={"retention.ms": _WEEK_MS},
)
DRONE_COMMANDS = Topic(
    "airgrid.drone.commands",
    key="drone id",
    carries="launch / goto / hold / return commands to nest gateways",
    content_type=PROTOBUF,
    message="airgrid.v1.DroneCommand",
    partitions=6,
    configs={"retention.ms": _DAY_MS},
)
MISSION_EVENTS = Topic(
    "airgrid.mission.events",
    key="mission id",
    carries="mission lifecycle stages",
    content_type=PROTOBUF,
    message="airgrid.v1.MissionEvent",
    partitions=6,
    configs={"retention.ms": _WEEK_MS},
)
ALERTS = Topic(
    "airgrid.alerts",
    key="subject id",
    carries="low battery, link lost, geofence breach, SLA at risk or breached, relay at risk",
    content_type=PROTOBUF,
    message="airgrid.v1.Alert",
    partitions=3,
    configs={"retention.ms": _WEEK_MS},
)

DETECTIONS = Topic(
    "airgrid.detections",
    key="drone id",
    carries="validated detections from drones' algorithms, posted by gateways",
    content_type=PROTOBUF,
    message="airgrid.v1.Detection",
    partitions=6,
    configs={"retention.ms": _WEEK_MS},
)
DETECTIONS_DLQ = Topic(
    "airgrid.detections.dlq",
    key="drone id if known",
    carries="rejected detections, original bytes kept, reason in the airgrid_reason header",
    content_type="application/octet-stream",
    message="original bytes",
    partitions=3,
    configs={"retention.ms": _WEEK_MS},
)
CASES = Topic(
    "airgrid.cases",
    key="case id",
    carries="cases opened and updated (detections joining, status changes, escalations)",
    content_type=PROTOBUF,
    message="airgrid.v1.CaseEvent",
    partitions=6,
    configs={"retention.ms": _WEEK_MS},
)


def feed_topic(department: str) -> Topic:
    """The data feed of one department."""
    return Topic(
        f"airgrid.feed.{department}",
        key="subject id",
        carries=f"the {department} department's data feed",
        content_type=JSON,
        message="feed item (JSON)",
        partitions=3,
        configs={"retention.ms": _DAY_MS},
    )


FEEDS: tuple[Topic, ...] = tuple(feed_topic(code) for code in DEPARTMENT_CODES)

ALL_TOPICS: tuple[Topic, ...] = (
    TELEMETRY_RAW,
    TELEMETRY_DLQ,
    DRONE_STATE,
    REGISTRY_CHANGES,
    INCIDENTS,
    DISPATCH_DECISIONS,
    DRONE_COMMANDS,
    MISSION_EVENTS,
    ALERTS,
    DETECTIONS,
    DETECTIONS_DLQ,
    CASES,
    *FEEDS,
)
