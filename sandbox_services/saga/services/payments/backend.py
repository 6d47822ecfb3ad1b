"""The payments service's data: a ledger of charges and refunds.

A refund is the compensation of a charge: a second ledger entry, not a deleted
charge, so the history stays and the invariant check can see every movement of
money.
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
