"""The inventory service's data: stock per SKU and every reservation and release of it.

A release is the compensation of a reservation: a second movement, not a
deleted one, so the invariant check can see every movement of stock.
"""

from __future__ import annotations

import sqlite3

from sandbox_services.saga.interface import Order
from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.store import now_ns, transaction


class InventoryBackend(ParticipantBackend):
    service = "inventory"
    schema = """
    CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS movements (
        id INTEGER PRIMARY KEY AUTOINCREMENT, saga_id TEXT NOT NULL, sku TEXT NOT NULL,
        kind TEXT NOT NULL, quantity INTEGER NOT NULL, at_ns INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS movements_saga ON movements (saga_id);
    """

    def seed(self) -> None:
        with self.lock, transaction(self.conn) as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO stock VALUES (?, ?)",
                [(sku, self.config.initial_stock) for sku in self.config.skus],
            )

    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        row = conn.execute("SELECT available FROM stock WHERE sku = ?", (order.sku,)).fetchone()
        if row is None:
            return f"unknown sku {order.sku}"
        if row[0] < order.quantity:
            return f"out of stock: {row[0]} {order.sku} left"
        conn.execute(
            "UPDATE stock SET available = available - ? WHERE sku = ?", (order.quantity, order.sku)
        )
        self._move(conn, order, "reserve")
        return None

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        conn.execute(
            "UPDATE stock SET available = available + ? WHERE sku = ?", (order.quantity, order.sku)
        )
        self._move(conn, order, "release")

    def _move(self, conn: sqlite3.Connection, order: Order, kind: str) -> None:
        conn.execute(
            "INSERT INTO movements (saga_id, sku, kind, quantity, at_ns) VALUES (?, ?, ?, ?, ?)",
            (order.saga_id, order.sku, kind, order.quantity, now_ns()),
        )
