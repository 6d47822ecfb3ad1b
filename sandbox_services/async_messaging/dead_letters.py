"""Inspect a dead-letter queue and send a letter back, as an operator would."""

from __future__ import annotations

import json

import pika
from opentelemetry import context as otel_context

from sandbox_services.broker.connection import connect
from sandbox_services.broker.tracing import extract_context, inject_headers


def peek(amqp_url: str, dead_queue: str) -> dict | None:
    """Read the first dead letter without removing it (basic_get, then nack with requeue)."""
    connection = connect(amqp_url, name="dead-letter-inspector", deadline_s=5)
    try:
        channel = connection.channel()
        method, properties, body = channel.basic_get(dead_queue, auto_ack=False)
        if method is None:
            return None
        channel.basic_nack(method.delivery_tag, requeue=True)
        headers = properties.headers or {}
        death = (headers.get("x-death") or [{}])[0]
        return {
            "message_id": properties.message_id,
            "body": json.loads(body),
            "attempts": int(headers.get("x-attempts", 0)) + 1,
            "reason": death.get("reason", b"").decode()
            if isinstance(death.get("reason"), bytes)
            else death.get("reason"),
            "from_queue": death.get("queue"),
        }
    finally:
        connection.close()


def send_back(amqp_url: str, dead_queue: str, queue: str, repair: bool) -> str | None:
    """Move the first dead letter back to its queue with a fresh attempt count."""
    connection = connect(amqp_url, name="dead-letter-mover", deadline_s=5)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        method, properties, body = channel.basic_get(dead_queue, auto_ack=False)
        if method is None:
            return None
        order = json.loads(body)
        if repair:
            order["customer_email"] = "fixed@example.com"
        headers = {
            k: v
            for k, v in (properties.headers or {}).items()
            if k
            not in (
                "x-attempts",
                "x-death",
                "x-first-death-queue",
                "x-first-death-reason",
                "x-first-death-exchange",
            )
        }
        # basic_get is outside the pika instrumentation: carry the original trace by hand,
        # so the send-back joins the order's trace.

        token = otel_context.attach(extract_context(properties.headers))
        try:
            channel.basic_publish(
                "",
                queue,
                json.dumps(order).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=properties.message_id,
                    headers=inject_headers(headers),
                ),
            )
        finally:
            otel_context.detach(token)
        channel.basic_ack(method.delivery_tag)
        return properties.message_id
    finally:
        connection.close()
