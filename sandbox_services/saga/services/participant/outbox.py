"""The transactional outbox: write an event in the step's own transaction, publish it later.

Writing the event to a table in the same SQLite transaction as the business
change means both happen or neither does. A separate relay publishes what is
in the table and only then marks it published, so a crash anywhere loses
nothing; the price is that a crash between publish and mark publishes again,
which is why every consumer is idempotent.
"""

from __future__ import annotations

import json
import sqlite3
import uuid

from opentelemetry import propagate

from sandbox_services.saga.choreography import EMITS
from sandbox_services.saga.interface import Order
from sandbox_services.saga.store import now_ns


def write_event(
    conn: sqlite3.Connection,
    *,
    service: str,
    action: str,
    outcome: str,
    order: Order,
    detail: str = "",
) -> str | None:
    """Add the event this outcome publishes to the outbox (inside the caller's transaction)."""
    event = EMITS.get((service, action, outcome))
    if event is None:
        return None
    message_id = uuid.uuid4().hex
    body = {
        "message_id": message_id,
        "event": event,
        "saga_id": order.saga_id,
        "order": order.to_dict(),
        "detail": detail,
    }
    # The row keeps the trace context of the step that wrote it, so the relay's
    # publish (later, on another thread) continues the same trace.
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    conn.execute(
        "INSERT INTO outbox (message_id, event, saga_id, body, traceparent, duplicate, created_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            event,
            order.saga_id,
            json.dumps(body),
            carrier.get("traceparent", ""),
            int(order.plan.duplicate),
            now_ns(),
        ),
    )
    return event


def pending(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    """Return the oldest unpublished outbox rows."""
    return conn.execute(
        "SELECT id, message_id, event, body, traceparent, duplicate FROM outbox"
        " WHERE published_ns IS NULL ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()


def mark_published(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Record that the broker confirmed these rows."""
    stamp = now_ns()
    conn.executemany("UPDATE outbox SET published_ns = ? WHERE id = ?", [(stamp, i) for i in ids])
