"""Every collector of the telemetry service (a leaf: adapters import it, it imports none),
and every bounded label set initialised at start-up so dashboards and alerts see zeros rather
than missing series."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from airgrid.reference import ScenarioSpec
from airgrid.topics import DEPARTMENT_CODES
from services.telemetry.domain.anomalies import AlertKind
from services.telemetry.domain.cases import ScenarioPrecision
from services.telemetry.domain.detections import DetectionReason
from services.telemetry.domain.validation import Reason

SSE_CLIENTS = Gauge(
    "airgrid_feed_sse_clients",
    "Server-Sent Events clients connected to a department feed, by department.",
    ["department"],
)


# the stream worker (batch_accounting.py, alert_publisher.py, stream.py)
RECORDS = Counter("airgrid_telemetry_records_total", "Telemetry records accepted into state.")
REJECTED = Counter(
    "airgrid_telemetry_rejected_total", "Telemetry records sent to the DLQ, by reason.", ["reason"]
)
ALERTS_RAISED = Counter(
    "airgrid_telemetry_alerts_total", "Alert transitions published.", ["kind", "active"]
)
ALERTS_DROPPED = Counter(
    "airgrid_telemetry_alerts_dropped_total",
    "Unacknowledged alerts dropped because too many waited (a long broker outage).",
)
ALERTS_RESENT = Counter(
    "airgrid_telemetry_alerts_resent_total", "Alert sends tried again after a failed produce."
)
TRACK_POINTS = Counter("airgrid_telemetry_track_points_total", "Track points written (batched).")
RECORD_TO_STATE_SECONDS = Histogram(
    "airgrid_telemetry_record_to_state_seconds",
    "From a record's event time to its drone state acknowledged by the broker.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# feeds.py
SSE_DROPPED = Counter(
    "airgrid_feed_sse_dropped_total", "SSE clients dropped because their queue was full."
)

# freshness_keeper.py (set every sync period)
FRESHNESS_SHARE = Gauge(
    "airgrid_inspection_freshness_share",
    "Share of an inspection plan's due cells seen within its revisit interval (1: none due).",
    ["plan", "department"],
)
OVERDUE_CELLS = Gauge(
    "airgrid_inspection_overdue_cells",
    "Cells of an inspection plan that are due and not seen within its revisit interval.",
    ["plan"],
)
FRESHNESS_OVERALL = Gauge(
    "airgrid_inspection_freshness_overall_share",
    "Share of the due cells of all active plans that are fresh for every plan holding them.",
)

# view_recovery.py
VIEWS_REREAD = Counter(
    "airgrid_telemetry_views_reread_total",
    "Times the telemetry service re-read its topic views after losing the broker.",
)


# detection_ingest.py
DETECTIONS_ACCEPTED = Counter(
    "airgrid_detections_accepted_total", "Detections accepted onto airgrid.detections."
)
DETECTIONS_REJECTED = Counter(
    "airgrid_detections_rejected_total",
    "Detections sent to the detection DLQ, by reason.",
    ["reason"],
)


# case_keeper.py
CASES_CHANGED = Counter(
    "airgrid_cases_changed_total", "Case changes published, by kind (opened, updated).", ["kind"]
)

CASES_OPENED = Counter(
    "airgrid_cases_opened_total",
    "Cases opened, by scenario and owner department: one count per owner department.",
    ["scenario", "department"],
)

# case_escalator.py
CASE_ESCALATIONS = Counter(
    "airgrid_case_escalations_total",
    "Case escalations tried, by scenario and outcome: posted (dispatch made the incident), "
    "replayed (it answered the first incident again), retried (down, 5xx, 409 or 429: tried "
    "again later), refused (another 4xx: given up, logged with the problem), superseded (the "
    "case was closed or escalated elsewhere before the escalation landed).",
    ["scenario", "outcome"],
)
CASE_ESCALATIONS_PENDING = Gauge(
    "airgrid_case_escalations_pending",
    "Cases whose escalation waits for dispatch (queued or between retries).",
)
ESCALATION_OUTCOMES = ("posted", "replayed", "retried", "refused", "superseded")

# case_precision.py (after each case transition and every period)
CASE_DISMISSED_SHARE = Gauge(
    "airgrid_case_dismissed_share",
    "Per scenario, dismissed cases over all cases: the false-alarm share (precision is one "
    "minus it). No series before a scenario's first case.",
    ["scenario"],
)


def record_precision(precision: Mapping[str, ScenarioPrecision]) -> None:
    """Set the dismissed share of every scenario with cases (cases are kept, never deleted,
    so a scenario's series, once there, stays)."""
    for scenario, tally in precision.items():
        if tally.dismissed_share is not None:
            CASE_DISMISSED_SHARE.labels(scenario).set(tally.dismissed_share)


def count_case_opened(scenario: str, departments: Iterable[str]) -> None:
    """One count per owner department of the opened case (each department's alert fires)."""
    for department in dict.fromkeys(departments):
        if department in DEPARTMENT_CODES:
            CASES_OPENED.labels(scenario, department).inc()


def initialise_case_labels(scenarios: Iterable[ScenarioSpec]) -> None:
    """Every (scenario, owner department) of the catalogue at zero, so the first case of a
    pair is an increase that the alert sees."""
    for scenario in scenarios:
        for department in dict.fromkeys(scenario.departments):
            if department in DEPARTMENT_CODES:
                CASES_OPENED.labels(scenario.code, department)


def initialise_labels() -> None:
    """Create every bounded label combination with a zero value."""
    for reason in Reason:
        REJECTED.labels(reason.value)
    for kind in AlertKind:
        for active in ("true", "false"):
            ALERTS_RAISED.labels(kind.value, active)
    for department in DEPARTMENT_CODES:
        SSE_CLIENTS.labels(department)
    for detection_reason in DetectionReason:
        DETECTIONS_REJECTED.labels(detection_reason.value)
    for change in ("opened", "updated"):
        CASES_CHANGED.labels(change)
    SSE_DROPPED.inc(0)
