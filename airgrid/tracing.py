"""Distributed tracing: one trace per incident, carried as W3C trace context over REST, the
outbox and the Kafka records (the CloudEvents distributed-tracing extension: `traceparent`
and `tracestate` headers).

Off unless AIRGRID_TRACING says otlp or console. While off no tracer provider is installed:
the OpenTelemetry API hands out non-recording spans, and the record paths check `enabled()`
first, so they neither read nor write trace headers.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from airgrid.config import Settings

log = logging.getLogger("airgrid.tracing")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACING_MODES = ("off", "otlp", "console")
# Requests of the operations endpoints are polled constantly and concern no incident.
UNTRACED_URLS = "/healthz,/readyz,/metrics"
__all__ = ["CONSUMER", "PRODUCER", "Context", "SpanKind"]
PRODUCER = SpanKind.PRODUCER
CONSUMER = SpanKind.CONSUMER

_tracer = trace.get_tracer("airgrid")
_enabled = False

Headers = Sequence[tuple[str, bytes]]


def enabled() -> bool:
    return _enabled


def configure_tracing(settings: Settings, service: str) -> bool:
    """Install the process's tracer provider when AIRGRID_TRACING asks for one; True then.

    The OTLP exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, headers, timeout), and the
    batch processor OTEL_BSP_*. OTEL_SERVICE_NAME, when set, names the service instead of
    `airgrid-<service>`. A process installs one provider: later calls keep the first.
    """
    global _enabled
    mode = settings.tracing
    if mode == "off" or _enabled:
        return _enabled
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    resource = Resource.create({SERVICE_NAME: f"airgrid-{service}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _enabled = True
    log.info("tracing on", extra={"exporter": mode, "service": service})
    return True


def instrument_app(app: Any) -> None:
    """Server spans for the app's requests, continuing a caller's `traceparent`."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS)


def current_context() -> tuple[str | None, str | None]:
    """The current span's (traceparent, tracestate), or (None, None): what the outbox keeps
    with a row, so that its record continues the trace of the request that wrote it."""
    if not _enabled:
        return None, None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT), carrier.get(TRACESTATE)


def current_headers() -> list[tuple[str, bytes]]:
    """Trace headers for a record sent now, in the current span's trace; none when off."""
    if not _enabled:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


def context_of(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The remote context these W3C values name; None when there is none (or tracing is off)."""
    if not _enabled or not traceparent:
        return None
    carrier = {TRACEPARENT: traceparent}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    found = propagate.extract(carrier, context=Context())
    return found if trace.get_current_span(found).get_span_context().is_valid else None


def context_of_headers(headers: Headers | None) -> Context | None:
    """The trace context a Kafka record carries in its headers, if any."""
    if not _enabled or not headers:
        return None
    traceparent = tracestate = None
    for name, value in headers:
        if name == TRACEPARENT:
            traceparent = bytes(value).decode("ascii", "replace")
        elif name == TRACESTATE:
            tracestate = bytes(value).decode("ascii", "replace")
    return context_of(traceparent, tracestate)


def cloudevent_attributes(
    *, ce_id: str | None, ce_type: str | None, topic: str | None
) -> dict[str, str]:
    """Span attributes naming a record (CloudEvents and messaging semantic conventions)."""
    attributes = {"messaging.system": "kafka"}
    for name, value in (
        ("cloudevents.event_id", ce_id),
        ("cloudevents.event_type", ce_type),
        ("messaging.destination.name", topic),
    ):
        if value:
            attributes[name] = value
    return attributes


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: Context | None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span continuing `parent`, current inside the block; nothing at all (None) when
    tracing is off or there is no parent, so no work ever starts a trace of its own."""
    if not _enabled or parent is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as started:
        yield started


@contextlib.contextmanager
def attached(parent: Context | None) -> Iterator[None]:
    """Make `parent` the current context inside the block (no span of its own)."""
    if parent is None:
        yield
        return
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


def annotate(**attributes: str) -> None:
    """Attributes on the current span (the request's server span), when there is one."""
    if _enabled:
        current = trace.get_current_span()
        for name, value in attributes.items():
            current.set_attribute(f"airgrid.{name}", value)


class IncidentTraces:
    """The trace context of each recent incident's decision, for the work that follows it
    later (its stages, its commands): bounded, the oldest forgotten first. Empty when off."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._contexts: OrderedDict[str, Context] = OrderedDict()

    def remember(self, incident_id: str, span: Span | None) -> None:
        if span is None:
            return
        self._contexts[incident_id] = trace.set_span_in_context(span, Context())
        self._contexts.move_to_end(incident_id)
        if len(self._contexts) > self.capacity:
            self._contexts.popitem(last=False)

    def get(self, incident_id: str) -> Context | None:
        if not self._contexts:
            return None
        return self._contexts.get(incident_id)
