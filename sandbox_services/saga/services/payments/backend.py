"""The payments service's data: a ledger of charges and refunds, or of holds and their release.

A refund is the compensation of a charge: a second ledger entry, not a deleted
charge, so the history stays and the invariant check can see every movement of
money.

Two ways to take the customer's money in a saga, chosen per order here
(``FaultPlan.authorize``; a real shop picks one in its code):

- charge, then refund on failure: the money leaves the account at once, and
  undoing it is a second movement, both on the customer's statement;
- authorize, then release on failure: the card issuer only holds the amount
  (the customer's available credit drops, nothing posts), and undoing it lets
  the hold go. The money would move only on capture, which belongs after the
  saga's point of no return; this sandbox's sagas never capture (see the lesson).
"""

from __future__ import annotations

import sqlite3

from sandbox_services.saga.interface import Order
from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.store import now_ns


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
        self._enter(conn, order, "hold" if order.plan.authorize else "charge")
        return None

    def undo(self, conn: sqlite3.Connection, action: str, order: Order) -> None:
        # The compensation matches the step: a charge is refunded, a hold is released.
        self._enter(conn, order, "release" if order.plan.authorize else "refund")

    def _enter(self, conn: sqlite3.Connection, order: Order, kind: str) -> None:
        conn.execute(
            "INSERT INTO ledger (saga_id, kind, amount_cents, at_ns) VALUES (?, ?, ?, ?)",
            (order.saga_id, kind, order.amount_cents, now_ns()),
        )
