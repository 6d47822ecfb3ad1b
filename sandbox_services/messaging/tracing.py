"""Carry W3C trace context in AMQP headers where the pika instrumentation does not.

The instrumentation injects on basic_publish and extracts on basic_consume; it never
sees basic_get or a message republished from a dead-letter queue, so those paths
inject and extract here. Injecting twice is harmless: the instrumented publish
overwrites ``traceparent`` with its own producer span.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate


def inject_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return headers with the current trace context added."""
    carrier: dict[str, Any] = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context:
    """Return the trace context carried by message headers (the current one if none)."""
    carrier = {k: v.decode() if isinstance(v, bytes) else v for k, v in (headers or {}).items()}
    return propagate.extract(carrier)
