"""The orders service's data: an order row per saga, pending until approved or rejected.

Rejecting is the compensation of creating: the row stays, with its new status,
so the invariant check can see every order the saga ever made.

"pending" is also a *semantic lock*: it tells anyone outside the saga that a
saga is still working on this order. A customer's cancel that finds the order
pending does not write over it; it leaves a request that the saga reads at its
approval step, and the saga rejects the order instead (``cancel`` and
``apply`` below). The isolation experiment switches the lock off per order
(``FaultPlan.semantic_lock_off``) to show the lost update it prevents.
"""

from __future__ import annotations

import sqlite3

from opentelemetry import trace

from sandbox_services.saga.interface import Order, StepResult
from sandbox_services.saga.services.participant.backend import ParticipantBackend, first_delivery
from sandbox_services.saga.store import now_ns, transaction

tracer = trace.get_tracer("sandbox_services.saga")


class OrdersBackend(ParticipantBackend):
    service = "orders"
    schema = """
    CREATE TABLE IF NOT EXISTS orders (
        saga_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, customer TEXT NOT NULL,
        sku TEXT NOT NULL, quantity INTEGER NOT NULL, amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
        -- Set by a customer's cancel that found the order held by its saga (pending).
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    """

    def execute(self, action: str, order: Order, **options) -> StepResult:
        """Run a saga step, or the customer's cancel (a request from outside any saga)."""
        if action == "cancel":
            return self.cancel(order, message_id=options.get("message_id"))
        return super().execute(action, order, **options)

    def apply(self, conn: sqlite3.Connection, action: str, order: Order) -> str | None:
        if action == "create":
            conn.execute(
                "INSERT INTO orders (saga_id, order_id, customer, sku, quantity, amount_cents,"
                " status, created_ns, updated_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
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
        if order.plan.semantic_lock_off:
            # No lock: approval writes its status blind, over whatever happened to the
            # order while the saga ran. A cancel written meanwhile is lost (a lost update).
            conn.execute(
                "UPDATE orders SET status = 'approved', updated_ns = ? WHERE saga_id = ?",
                (now_ns(), order.saga_id),
            )
            return None
        # approve: the order must still be pending (the lock this saga holds), and nobody
        # may have asked to cancel it meanwhile; a refusal here makes the saga compensate.
        row = conn.execute(
            "SELECT status, cancel_requested FROM orders WHERE saga_id = ?", (order.saga_id,)
        ).fetchone()
        if row is not None and row["cancel_requested"]:
            return "the customer cancelled while the saga ran"
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
            "INSERT OR IGNORE INTO orders (saga_id, order_id, customer, sku, quantity,"
            " amount_cents, status, created_ns, updated_ns)"
            " VALUES (?, ?, ?, ?, ?, ?, 'rejected', ?, ?)",
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

    def cancel(self, order: Order, *, message_id: str | None) -> StepResult:
        """Cancel an order at the customer's request; the answer is what the customer is told."""
        start = now_ns()
        with tracer.start_as_current_span("orders.cancel") as span:
            span.set_attribute("saga.id", order.saga_id)
            with self.lock, transaction(self.conn) as conn:
                if message_id and not first_delivery(conn, message_id):
                    return self._log(
                        conn, order, "cancel", "forward", "duplicate", start, "already handled"
                    )
                row = conn.execute(
                    "SELECT status FROM orders WHERE saga_id = ?", (order.saga_id,)
                ).fetchone()
                status = row["status"] if row else None
                if status is None:
                    reason = "no such order"
                    return self._log(
                        conn, order, "cancel", "failure", "refused", start, reason, result="refused"
                    )
                if order.plan.semantic_lock_off:
                    # No lock: the cancel writes at once, whatever saga still works on the order.
                    conn.execute(
                        "UPDATE orders SET status = 'cancelled', updated_ns = ? WHERE saga_id = ?",
                        (now_ns(), order.saga_id),
                    )
                    detail = f"order cancelled (it was {status})"
                    return self._log(conn, order, "cancel", "forward", "done", start, detail)
                if status == "pending":
                    # The semantic lock: a saga holds this order. Leave the request for the
                    # saga to honour at its approval step rather than write over its work.
                    conn.execute(
                        "UPDATE orders SET cancel_requested = 1, updated_ns = ? WHERE saga_id = ?",
                        (now_ns(), order.saga_id),
                    )
                    detail = "order is pending: cancel recorded; the saga will reject it"
                    return self._log(
                        conn, order, "cancel", "forward", "deferred", start, detail, result="done"
                    )
                if status == "approved":
                    reason = "already approved: returning it is a new saga"
                    return self._log(
                        conn, order, "cancel", "failure", "refused", start, reason, result="refused"
                    )
                detail = f"nothing to cancel: the order is {status}"
                return self._log(
                    conn, order, "cancel", "forward", "noop", start, detail, result="noop"
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
