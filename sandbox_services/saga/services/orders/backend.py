"""The orders service's data: an order row per saga, pending until approved or rejected.

Rejecting is the compensation of creating: the row stays, with its new status,
so the invariant check can see every order the saga ever made.
"""

from __future__ import annotations

import sqlite3

from sandbox_services.saga.interface import Order
from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.store import now_ns


class OrdersBackend(ParticipantBackend):
    service = "orders"
    schema = """
    CREATE TABLE IF NOT EXISTS orders (
        saga_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, customer TEXT NOT NULL,
        sku TEXT NOT NULL, quantity INTEGER NOT NULL, amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL
    );
    """

    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        if action == "create":
            conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (
                    order.saga_id,
                    order.order_id,
                    order.customer,
                    order.sku,
                    order.quantity,
                    order.amount_cents,
                    now_ns(),
                    now_ns(),
                ),
            )
            return None
        # approve: the order must still be pending; anything else is a broken saga.
        changed = conn.execute(
            "UPDATE orders SET status = 'approved', updated_ns = ? WHERE saga_id = ?"
            " AND status = 'pending'",
            (now_ns(), order.saga_id),
        ).rowcount
        return None if changed else "order is not pending"

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        conn.execute(
            "UPDATE orders SET status = 'rejected', updated_ns = ? WHERE saga_id = ?",
            (now_ns(), order.saga_id),
        )

    def on_tombstone(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        # Rejected before it was even created: keep a row so the saga reads as ended.
        conn.execute(
            "INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?, 'rejected', ?, ?)",
            (
                order.saga_id,
                order.order_id,
                order.customer,
                order.sku,
                order.quantity,
                order.amount_cents,
                now_ns(),
                now_ns(),
            ),
        )

    def statuses(self, saga_ids: list[str]) -> dict[str, str]:
        """Return each saga's order status; missing orders are "unknown"."""
        with self.lock:
            found = dict(_select_in(self.conn, "SELECT saga_id, status FROM orders", saga_ids))
        return {saga_id: found.get(saga_id, "unknown") for saga_id in saga_ids}


def _select_in(conn: sqlite3.Connection, query: str, saga_ids: list[str]) -> list[tuple]:
    """Run ``query WHERE saga_id IN (...)`` in chunks small enough for SQLite."""
    rows: list[tuple] = []
    for i in range(0, len(saga_ids), 500):
        chunk = saga_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows.extend(tuple(r) for r in conn.execute(f"{query} WHERE saga_id IN ({marks})", chunk))
    return rows
