"""Each participant's own data and effects: what a step changes, what its compensation undoes.

A compensation is a new business action that semantically undoes the step (a
refund is a second ledger entry, not a deleted charge): the history stays, so
the invariant check can see every movement of money and stock.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sandbox_services.saga.knobs import SagaConfig

from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.interface import Order
from sandbox_services.saga.store import database_path, now_ns, transaction


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


class PaymentsBackend(ParticipantBackend):
    service = "payments"
    schema = """
    CREATE TABLE IF NOT EXISTS ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT, saga_id TEXT NOT NULL, kind TEXT NOT NULL,
        amount_cents INTEGER NOT NULL, at_ns INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS ledger_saga ON ledger (saga_id);
    """

    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        conn.execute(
            "INSERT INTO ledger (saga_id, kind, amount_cents, at_ns) VALUES (?, 'charge', ?, ?)",
            (order.saga_id, order.amount_cents, now_ns()),
        )
        return None

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        conn.execute(
            "INSERT INTO ledger (saga_id, kind, amount_cents, at_ns) VALUES (?, 'refund', ?, ?)",
            (order.saga_id, order.amount_cents, now_ns()),
        )


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


BACKENDS: dict[str, type[ParticipantBackend]] = {
    cls.service: cls for cls in (OrdersBackend, PaymentsBackend, InventoryBackend, ShippingBackend)
}


def open_backend(service: str, workdir: Path, config: SagaConfig) -> ParticipantBackend:
    """Open a participant's backend on its own file in the sandbox directory."""
    return BACKENDS[service](database_path(workdir, service), config)


def _select_in(conn: sqlite3.Connection, query: str, saga_ids: list[str]) -> list[tuple]:
    """Run ``query WHERE saga_id IN (...)`` in chunks small enough for SQLite."""
    rows: list[tuple] = []
    for i in range(0, len(saga_ids), 500):
        chunk = saga_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows.extend(tuple(r) for r in conn.execute(f"{query} WHERE saga_id IN ({marks})", chunk))
    return rows
