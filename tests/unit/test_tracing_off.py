"""Tracing is off by default: no tracer provider is installed, no span is created and no
trace context is read from or written to records."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from pydantic import ValidationError

from airgrid import tracing
from airgrid.config import Settings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_off_by_default_installs_nothing() -> None:
    settings = Settings()
    assert settings.tracing == "off"
    assert tracing.configure_tracing(settings, "dispatch") is False
    assert tracing.enabled() is False
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"


def test_off_no_context_travels_and_no_span_is_made() -> None:
    assert tracing.current_context() == (None, None)
    assert tracing.current_headers() == []
    assert tracing.context_of(TRACEPARENT) is None
    assert tracing.context_of_headers([("traceparent", TRACEPARENT.encode())]) is None
    with tracing.span("dispatch.decide", parent=Context()) as span:
        assert span is None
    traces = tracing.IncidentTraces()
    traces.remember("inc_1", None)
    assert traces.get("inc_1") is None


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(tracing="jaeger")  # type: ignore[arg-type]
