"""Span conversion to the wire shape and the outbox writer's batching, against real Redis."""

from __future__ import annotations

import json
import os
import uuid

import redis
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from sandbox_services.runtime.outbox import OutboxWriter
from sandbox_services.runtime.tracing import OutboxSpanProcessor, protocol_of


def _provider(key: str) -> tuple[TracerProvider, OutboxWriter]:
    writer = OutboxWriter(os.environ["REDIS_URL"], key)
    provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
    provider.add_span_processor(OutboxSpanProcessor(writer))
    return provider, writer


def _payloads(key: str) -> list[dict]:
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        return [json.loads(item) for item in connection.lrange(key, 0, -1)]
    finally:
        connection.delete(key)


def test_protocol_comes_from_semantic_convention_attributes():
    assert protocol_of({"rpc.system": "grpc"}) == "grpc"
    assert protocol_of({"messaging.system": "rabbitmq"}) == "amqp"
    assert protocol_of({"http.request.method": "GET"}) == "http"
    assert protocol_of({"url.full": "http://127.0.0.1:1/x"}) == "http"
    assert protocol_of({"lesson.step": 1}) == "internal"


def test_finished_spans_reach_the_outbox_in_wire_shape():
    key = f"lab:test:{uuid.uuid4().hex}"
    provider, _ = _provider(key)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "GET",
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "GET", "server.port": 8080, "tags": ("a", "b")},
    ) as parent:
        with tracer.start_as_current_span("work") as child:
            child.set_status(Status(StatusCode.ERROR, "broken on purpose"))
    provider.shutdown()
    [payload] = _payloads(key)
    work, call = payload["items"]
    assert payload["kind"] == "spans"
    assert call["kind"] == "client" and call["protocol"] == "http" and call["status"] == "unset"
    assert call["service"] == "orders" and call["parent_id"] is None
    assert call["attributes"] == {
        "http.request.method": "GET",
        "server.port": 8080,
        "tags": ["a", "b"],
    }
    assert work["parent_id"] == call["span_id"] == format(parent.get_span_context().span_id, "016x")
    assert work["trace_id"] == call["trace_id"] and len(work["trace_id"]) == 32
    assert work["status"] == "error" and work["kind"] == "internal"
    assert work["attributes"]["status.description"] == "broken on purpose"
    assert call["start_ns"] <= work["start_ns"] <= work["end_ns"] <= call["end_ns"]


def test_outbox_sends_bursts_in_batches_of_at_most_one_hundred():
    key = f"lab:test:{uuid.uuid4().hex}"
    provider, writer = _provider(key)
    tracer = provider.get_tracer("test")
    for number in range(250):
        tracer.start_span(f"span {number}").end()
    writer.put_metrics("orders", {"depth": 1})
    writer.put_metrics("orders", {"depth": 2})  # only the newest values of a flush travel
    provider.shutdown()
    payloads = _payloads(key)
    batches = [payload["items"] for payload in payloads if payload["kind"] == "spans"]
    metrics = [payload for payload in payloads if payload["kind"] == "metrics"]
    assert sum(len(batch) for batch in batches) == 250
    assert max(len(batch) for batch in batches) <= 100
    assert [m["values"] for m in metrics if m["source"] == "orders"][-1] == {"depth": 2}


def test_a_pika_publish_reaches_the_outbox_as_one_producer_span_the_message_points_at():
    import pika
    from opentelemetry.instrumentation.pika import PikaInstrumentor

    key = f"lab:test:{uuid.uuid4().hex}"
    provider, _ = _provider(key)
    tracer = provider.get_tracer("test")
    connection = pika.BlockingConnection(
        pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    )
    try:
        channel = connection.channel()
        # As the instrumentor's channel() wrapper does: the inner channel, then the blocking one.
        PikaInstrumentor.instrument_channel(channel._impl, tracer_provider=provider)
        PikaInstrumentor.instrument_channel(channel, tracer_provider=provider)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server:
            channel.basic_publish("", queue, b"{}", pika.BasicProperties(message_id="m1"))
        _, properties, _ = channel.basic_get(queue, auto_ack=True)
    finally:
        connection.close()
    provider.shutdown()
    spans = [span for payload in _payloads(key) for span in payload["items"]]
    producers = [span for span in spans if span["kind"] == "producer"]
    assert len(producers) == 1, spans
    [producer] = producers
    assert producer["protocol"] == "amqp"
    assert producer["parent_id"] == format(server.get_span_context().span_id, "016x")
    # The consumer's span will name this span as its parent: the id must exist.
    assert properties.headers["traceparent"].split("-")[2] == producer["span_id"]
