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


def untraced_basic_consume(channel, queue: str, callback, **kwargs: Any) -> str:
    """Consume without the instrumentation's span per message.

    A replay of 100,000 events would put 100,000 spans in the learner's trace; the
    caller makes one span per batch instead.
    """
    # wrapt keeps the original bound method as __wrapped__ on the instrumented channel.
    consume = getattr(channel.basic_consume, "__wrapped__", channel.basic_consume)
    return consume(queue, callback, **kwargs)
