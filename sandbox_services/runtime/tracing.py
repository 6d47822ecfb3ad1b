"""Start OpenTelemetry in one place for a sandbox process: propagators, exporter, instrumentation.

Call ``init_tracing`` in the process that serves (after the fork, never in the
host or the supervisor) and before any gRPC channel/server, aiohttp
application/session or pika channel is created. The instrumentors that patch
``grpc.aio.server``, ``grpc.aio.insecure_channel``, ``aiohttp.web.Application``,
``aiohttp.ClientSession`` and ``pika``'s ``channel()`` run once in the warm
host (``instrument_libraries``), after every lesson module is imported, or in
``init_tracing`` where no host did. Lesson code must therefore look them up at
call time (``web.Application()``, ``grpc.aio.server()``), not bind them with
``from ... import`` at import time.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

import grpc
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
from opentelemetry.instrumentation.grpc import (
    GrpcAioInstrumentorClient,
    GrpcAioInstrumentorServer,
)
from opentelemetry.instrumentation.grpc import filters as grpc_filters
from opentelemetry.instrumentation.pika import PikaInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import keys
from .grpc_peer import add_peer_interceptors
from .outbox import OutboxWriter

_STATUS = {StatusCode.OK: "ok", StatusCode.ERROR: "error", StatusCode.UNSET: "unset"}
_KIND = {
    SpanKind.CLIENT: "client",
    SpanKind.SERVER: "server",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
    SpanKind.INTERNAL: "internal",
}

OTLP_SHUTDOWN_S = 1.0
# The run a span belongs to travels as W3C baggage with every call and message
# of that run (the propagators below carry it over HTTP, gRPC and AMQP), and
# each process copies it onto its spans as they start. A span without it is the
# lab's own background work: health probes, gauges, pollers.
RUN_BAGGAGE = "lab.run"
_PIKA_SCOPE = "opentelemetry.instrumentation.pika"
_provider: TracerProvider | None = None
_writer: OutboxWriter | None = None
_instrumented = False


def protocol_of(attributes: dict[str, Any]) -> str:
    """Return http, grpc, amqp or internal from a span's semantic-convention attributes."""
    if attributes.get("rpc.system") == "grpc":
        return "grpc"
    if "messaging.system" in attributes:
        return "amqp"
    if any(name.startswith(("http.", "url.")) for name in attributes):
        return "http"
    return "internal"


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_json_safe(item) for item in value]
    return str(value)


def span_to_wire(span: ReadableSpan) -> dict:
    """Return the wire shape of a finished span, without ``seq`` and ``peer`` (the supervisor's)."""
    context = span.get_span_context()
    attributes = {name: _json_safe(value) for name, value in (span.attributes or {}).items()}
    if span.status.description:
        attributes["status.description"] = span.status.description
    for event in span.events:
        if event.name == "exception" and event.attributes:
            attributes.setdefault(
                "exception.message", str(event.attributes.get("exception.message"))
            )
    run = attributes.pop(RUN_BAGGAGE, None)
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "service": span.resource.attributes.get("service.name", "unknown"),
        "name": span.name,
        "kind": _KIND.get(span.kind, "internal"),
        "protocol": protocol_of(attributes),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": _STATUS.get(span.status.status_code, "unset"),
        "attributes": attributes,
        "run": run,  # the supervisor fills in "background" where no run is known
    }


def _is_pika_producer(span: object) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return (
        getattr(span, "kind", None) is SpanKind.PRODUCER
        and scope is not None
        and scope.name.startswith(_PIKA_SCOPE)
    )


class OutboxSpanProcessor(SpanProcessor):
    """Convert each finished span and queue it for the outbox thread (never blocks on I/O).

    The pika instrumentation wraps both ``BlockingChannel.basic_publish`` and the
    ``Channel.basic_publish`` it calls, so every publish makes two nested PRODUCER
    spans. They are collapsed here into one: the outer span's timing and status
    (it includes the wait for the broker's confirm, and sees a refused publish)
    under the inner span's id, which is the id the message headers carry and so
    the parent of the consumer's span.
    """

    def __init__(self, writer: OutboxWriter) -> None:
        self._writer = writer
        self._inner_of_outer: dict[int, int] = {}  # outer producer span id -> inner's
        self._inner: set[int] = set()  # inner producer spans: never sent on their own

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        run = baggage.get_baggage(RUN_BAGGAGE, parent_context)
        if run:
            span.set_attribute(RUN_BAGGAGE, str(run))
        if not _is_pika_producer(span):
            return
        parent = trace.get_current_span(parent_context)
        if _is_pika_producer(parent):
            # dict and set operations are atomic: publishing threads need no lock here.
            self._inner_of_outer[parent.get_span_context().span_id] = span.context.span_id
            self._inner.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        span_id = span.context.span_id
        if span_id in self._inner:
            self._inner.discard(span_id)
            return
        inner = self._inner_of_outer.pop(span_id, None)
        if span.context.trace_flags.sampled:
            wire = span_to_wire(span)
            if inner is not None:
                wire["span_id"] = format(inner, "016x")
            self._writer.put_span(wire)

    def shutdown(self) -> None:
        self._writer.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._writer.flush()
        return True


def _otlp_processor() -> SpanProcessor | None:
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    # HTTP by default: the gRPC exporter opens a channel, and a runner that
    # later forks load generators (ctx.fork) would hang its children.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return BatchSpanProcessor(OTLPSpanExporter())


def init_tracing(
    service_name: str,
    *,
    sandbox_id: str,
    redis_url: str,
    sampler: Sampler | None = None,
) -> TracerProvider:
    """Trace this process as ``service_name`` of a sandbox; instrument gRPC, aiohttp and pika."""
    global _provider, _writer
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    resource = Resource.create({"service.name": service_name, "lab.sandbox_id": sandbox_id})
    provider = TracerProvider(resource=resource, sampler=sampler)
    _writer = OutboxWriter(redis_url, keys.sandbox_outbox(sandbox_id))
    provider.add_span_processor(OutboxSpanProcessor(_writer))
    otlp = _otlp_processor()
    if otlp is not None:
        provider.add_span_processor(otlp)
    trace.set_tracer_provider(provider)
    _provider = provider
    instrument_libraries()  # done already in a fork of the warm host
    atexit.register(shutdown_tracing)
    return provider


def instrument_libraries() -> None:
    """Patch gRPC, aiohttp and pika to trace, once per process and every process forked from it.

    The sandbox host calls this while warming up, so no service, runner or load
    generator pays for it at start (about 5 ms each, five or more a sandbox).
    The instrumentors take their tracers from the global provider, which is a
    proxy until ``init_tracing`` sets the process's own after the fork. It
    makes no gRPC channel or server, so the host stays fit to fork.
    """
    global _instrumented
    if _instrumented:
        return
    _instrumented = True
    # Health probes are plumbing, not lesson traffic: keep them out of the diagrams.
    os.environ.setdefault("OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS", "healthz")
    not_health = grpc_filters.negate(grpc_filters.health_check())
    # The versions are pinned together in pyproject.toml; checking them again
    # reads package metadata and costs ~35 ms of every service's start.
    options = {"skip_dep_check": True}
    GrpcAioInstrumentorServer(filter_=not_health).instrument(**options)
    GrpcAioInstrumentorClient(filter_=not_health).instrument(**options)
    # Ours wraps the instrumented channel factory so each client span learns its target.
    add_peer_interceptors(grpc.aio)
    AioHttpServerInstrumentor().instrument(**options)
    AioHttpClientInstrumentor().instrument(**options)
    PikaInstrumentor().instrument(**options)


def attach_run(run_id: str) -> None:
    """Mark every span this process starts from now on, and every call it makes, as the run's."""
    otel_context.attach(baggage.set_baggage(RUN_BAGGAGE, run_id))


def outbox_writer() -> OutboxWriter | None:
    """Return this process's outbox writer (None before ``init_tracing``)."""
    return _writer


def shutdown_tracing() -> None:
    """Flush every span still queued; call before a traced process exits."""
    global _provider
    if _provider is None:
        return
    provider, _provider = _provider, None
    if _writer is not None:
        _writer.close()  # the learner's diagram first, and never behind a collector
    # An unreachable OTLP collector retries for seconds; a run's answer or a
    # service's stop must not wait on it.
    closing = threading.Thread(target=provider.shutdown, name="lab-tracing-shutdown", daemon=True)
    closing.start()
    closing.join(OTLP_SHUTDOWN_S)
