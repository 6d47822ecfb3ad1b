"""The coordinator's durable saga log: every transition is committed before it is acted on.

The ``sagas`` table holds where each saga stands (a small state machine); the
``saga_log`` table keeps every transition in order. A coordinator that was
killed reads ``sagas`` on start and carries on from there: the log, not the
process's memory, is the saga.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sandbox_services.saga.interface import FINAL_STATES, Order
from sandbox_services.saga.store import connect, current_span_ids, now_ns, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (
    saga_id TEXT PRIMARY KEY,
    order_json TEXT NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL,            -- forward | compensating | finished
    step_index INTEGER NOT NULL,    -- forward: next step; compensating: next step to undo
    failed_index INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    started_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS saga_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    saga_id TEXT NOT NULL,
    state TEXT NOT NULL,
    service TEXT NOT NULL DEFAULT '',
    step TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,             -- transition | forward | compensation | failure
    status TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    trace_id TEXT,
    span_id TEXT
);
CREATE INDEX IF NOT EXISTS saga_log_saga ON saga_log (saga_id);
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command to a participant came to, as the coordinator logs it."""

    state: str
    service: str
    step: str
    kind: str  # forward | compensation | failure
    status: str
    start_ns: int
    detail: str = ""
    # The span of this command (the coordinator's step span), so the timeline
    # entry opens its own span; None: the span current when it is logged.
    trace_id: str | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class SagaRecord:
    saga_id: str
    order: Order
    state: str
    phase: str
    step_index: int
    failed_index: int | None
    paused: bool

    @property
    def finished(self) -> bool:
        """Tell whether the saga reached APPROVED or REJECTED."""
        return self.state in FINAL_STATES


class SagaLog:
    """The coordinator's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def close(self) -> None:
        """Close the file."""
        self.conn.close()

    def start(self, order: Order) -> SagaRecord:
        """Record a new saga as STARTED; a second start of the same saga returns the first."""
        with self.lock, transaction(self.conn) as conn:
            stamp = now_ns()
            inserted = conn.execute(
                "INSERT OR IGNORE INTO sagas (saga_id, order_json, state, phase, step_index,"
                " started_ns, updated_ns) VALUES (?, ?, 'STARTED', 'forward', 0, ?, ?)",
                (order.saga_id, json.dumps(order.to_dict()), stamp, stamp),
            ).rowcount
            if inserted:
                self._append(conn, order.saga_id, "STARTED", kind="transition", start_ns=stamp)
        return self.load(order.saga_id)

    def transition(
        self,
        saga_id: str,
        *,
        state: str,
        phase: str,
        step_index: int,
        failed_index: int | None = None,
        paused: bool | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """Record a command's outcome (if any) and the saga's next state in one transaction."""
        with self.lock, transaction(self.conn) as conn:
            if outcome is not None:
                self._append(
                    conn,
                    saga_id,
                    outcome.state,
                    service=outcome.service,
                    step=outcome.step,
                    kind=outcome.kind,
                    status=outcome.status,
                    detail=outcome.detail,
                    start_ns=outcome.start_ns,
                    span_ids=(outcome.trace_id, outcome.span_id),
                )
            conn.execute(
                "UPDATE sagas SET state = ?, phase = ?, step_index = ?,"
                " failed_index = COALESCE(?, failed_index), paused = COALESCE(?, paused),"
                " updated_ns = ? WHERE saga_id = ?",
                (
                    state,
                    phase,
                    step_index,
                    failed_index,
                    None if paused is None else int(paused),
                    now_ns(),
                    saga_id,
                ),
            )
            self._append(conn, saga_id, state, kind="transition", start_ns=now_ns())

    def load(self, saga_id: str) -> SagaRecord:
        """Return one saga's record."""
        with self.lock:
            row = self.conn.execute("SELECT * FROM sagas WHERE saga_id = ?", (saga_id,)).fetchone()
        if row is None:
            raise KeyError(saga_id)
        return _record(row)

    def unfinished(self) -> list[SagaRecord]:
        """Return every saga not yet APPROVED or REJECTED (to resume after a restart)."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT * FROM sagas WHERE phase != 'finished' ORDER BY started_ns"
            ).fetchall()
        return [_record(row) for row in rows]

    def states(self, saga_ids: list[str]) -> dict[str, tuple[str, bool]]:
        """Return (state, paused) of each known saga."""
        found: dict[str, tuple[str, bool]] = {}
        with self.lock:
            for i in range(0, len(saga_ids), 500):
                chunk = saga_ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for row in self.conn.execute(
                    f"SELECT saga_id, state, paused FROM sagas WHERE saga_id IN ({marks})", chunk
                ):
                    found[row[0]] = (row[1], bool(row[2]))
        return found

    def _append(
        self,
        conn: sqlite3.Connection,
        saga_id: str,
        state: str,
        *,
        kind: str,
        start_ns: int,
        service: str = "",
        step: str = "",
        status: str = "",
        detail: str = "",
        span_ids: tuple[str | None, str | None] = (None, None),
    ) -> None:
        trace_id, span_id = span_ids if span_ids[1] else current_span_ids()
        conn.execute(
            "INSERT INTO saga_log (saga_id, state, service, step, kind, status, detail,"
            " start_ns, end_ns, trace_id, span_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                saga_id,
                state,
                service,
                step,
                kind,
                status,
                detail,
                start_ns,
                now_ns(),
                trace_id,
                span_id,
            ),
        )


def _record(row: sqlite3.Row) -> SagaRecord:
    return SagaRecord(
        saga_id=row["saga_id"],
        order=Order.from_dict(json.loads(row["order_json"])),
        state=row["state"],
        phase=row["phase"],
        step_index=row["step_index"],
        failed_index=row["failed_index"],
        paused=bool(row["paused"]),
    )
