"""Observability: structured JSON logs, Prometheus metrics shared by every service."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "airgrid_http_requests_total",
    "HTTP requests answered, by service, route template, method and status class.",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "airgrid_http_request_duration_seconds",
    "HTTP request handling time.",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
OUTBOX_BACKLOG = Gauge(
    "airgrid_outbox_backlog_records",
    "Outbox rows fetched but not yet published in the last relay pass.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "airgrid_outbox_published_total", "Outbox rows published to Kafka.", ["service"]
)
RECORDS_CONSUMED = Counter(
    "airgrid_consumer_records_total",
    "Kafka records handled by a consumer, by consumer and outcome.",
    ["consumer", "outcome"],
)

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the `extra=` fields (incident_id, drone_id, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", fmt: str = "json", service: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def http_metrics_middleware(
    service: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_DURATION.labels(service, template, request.method).observe(
            time.perf_counter() - started
        )
        HTTP_REQUESTS.labels(
            service, template, request.method, f"{response.status_code // 100}xx"
        ).inc()
        return response

    return middleware
