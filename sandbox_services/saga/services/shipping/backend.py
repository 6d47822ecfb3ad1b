"""The shipping service's data: a shipment per saga, scheduled or cancelled.

Cancelling is the compensation of scheduling: the row stays, with its new
status, so the invariant check can see every shipment the saga ever made.
"""

from __future__ import annotations

import sqlite3

from sandbox_services.saga.interface import Order
from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.store import now_ns


class ShippingBackend(ParticipantBackend):
    service = "shipping"
    schema = """
    CREATE TABLE IF NOT EXISTS shipments (
        saga_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, sku TEXT NOT NULL,
        quantity INTEGER NOT NULL, status TEXT NOT NULL, updated_ns INTEGER NOT NULL
    );
    """

    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        conn.execute(
            "INSERT INTO shipments VALUES (?, ?, ?, ?, 'scheduled', ?)",
            (order.saga_id, order.order_id, order.sku, order.quantity, now_ns()),
        )
        return None

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        conn.execute(
            "UPDATE shipments SET status = 'cancelled', updated_ns = ? WHERE saga_id = ?",
            (now_ns(), order.saga_id),
        )
