"""Observability: structured JSON logs, Prometheus metrics shared by every service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import Pool, QueuePool
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

CONSUMER_LAG = Gauge(
    "airgrid_consumer_lag_records",
    "Records on the broker not yet fetched by this process's group consumer, by group and topic.",
    ["group", "topic"],
)
LAG_POLL_SECONDS = 5.0


def watch_consumer(group: str, consumer: Any, prefix: str = "") -> None:
    """Export the lag of a group consumer (high watermark minus position) until it stops.

    `group` and the topic label are the names without the deployment's topic prefix, so
    label values stay bounded and dashboards work for every prefix."""
    with contextlib.suppress(RuntimeError):  # no running loop: nothing to watch
        task = asyncio.get_running_loop().create_task(
            _poll_lag(group, consumer, prefix), name=f"lag-{group}"
        )
        _LAG_TASKS.add(task)
        task.add_done_callback(_LAG_TASKS.discard)


_LAG_TASKS: set[asyncio.Task[None]] = set()


async def _poll_lag(group: str, consumer: Any, prefix: str) -> None:
    while not getattr(consumer, "_closed", False):
        lag: dict[str, int] = {}
        for tp in list(consumer.assignment()):
            with contextlib.suppress(Exception):
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = await consumer.position(tp)
                topic = tp.topic.removeprefix(prefix)
                lag[topic] = lag.get(topic, 0) + max(0, high - position)
        for topic, records in lag.items():
            CONSUMER_LAG.labels(group, topic).set(records)
        await asyncio.sleep(LAG_POLL_SECONDS)


class DatabasePoolCollector(Collector):
    """Connections of every SQLAlchemy pool this process opened, read at scrape time."""

    def __init__(self) -> None:
        self.pools: weakref.WeakSet[Pool] = weakref.WeakSet()

    def on_engine_connect(self, connection: Connection) -> None:
        self.pools.add(connection.engine.pool)

    def collect(self) -> Iterator[Metric]:
        in_use = GaugeMetricFamily(
            "airgrid_db_pool_connections",
            "Database connections of this process's pools, by state (in_use or idle).",
            labels=["state"],
        )
        size = GaugeMetricFamily(
            "airgrid_db_pool_size_connections",
            "Configured pool size (connections kept open), summed over this process's pools.",
        )
        checked_out = idle = configured = 0
        for pool in list(self.pools):
            if isinstance(pool, QueuePool):
                checked_out += pool.checkedout()
                idle += pool.checkedin()
                configured += pool.size()
        in_use.add_metric(["in_use"], checked_out)
        in_use.add_metric(["idle"], idle)
        size.add_metric([], configured)
        yield in_use
        yield size


DATABASE_POOLS = DatabasePoolCollector()
REGISTRY.register(DATABASE_POOLS)
event.listen(Engine, "engine_connect", DATABASE_POOLS.on_engine_connect)

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
    OUTBOX_BACKLOG.labels(service)  # every service's series exists from start-up, at zero
    OUTBOX_PUBLISHED.labels(service)

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
