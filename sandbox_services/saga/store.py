"""Open a service's own SQLite file and run local transactions on it.

Each service owns one file in the sandbox's directory and no service opens
another's: the only way data crosses a service boundary is a message or a call.
The tables every participant shares live here: the outbox (events to publish),
the inbox (message ids already handled) and the step log (the timeline).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import trace

COMMON_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    saga_id TEXT NOT NULL,
    body TEXT NOT NULL,
    traceparent TEXT NOT NULL DEFAULT '',
    duplicate INTEGER NOT NULL DEFAULT 0,
    created_ns INTEGER NOT NULL,
    published_ns INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published_ns) WHERE published_ns IS NULL;
CREATE TABLE IF NOT EXISTS inbox (
    message_id TEXT PRIMARY KEY,
    received_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS step_state (
    saga_id TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_ns INTEGER NOT NULL,
    PRIMARY KEY (saga_id, step)
);
CREATE TABLE IF NOT EXISTS step_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    saga_id TEXT NOT NULL,
    service TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    trace_id TEXT,
    span_id TEXT
);
CREATE INDEX IF NOT EXISTS step_log_saga ON step_log (saga_id);
"""


def database_path(workdir: Path, service: str) -> Path:
    """Return the SQLite file a service owns in the sandbox's directory."""
    return Path(workdir) / f"saga-{service}.sqlite3"


def connect(path: Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode; transactions are explicit (see ``transaction``)."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # WAL lets the experiment read while the service writes; NORMAL sync keeps
    # every commit across a process crash (SIGKILL), which is what the lesson kills.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def open_store(path: Path, schema: str) -> sqlite3.Connection:
    """Open a service's file and create its tables if this is the first start."""
    conn = connect(path)
    conn.executescript(COMMON_SCHEMA + schema)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run one local transaction: everything inside commits together or not at all."""
    # IMMEDIATE takes the write lock up front, so two deliveries of the same
    # message cannot both read "not applied yet" and both apply.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def now_ns() -> int:
    """Return wall-clock nanoseconds (the trace's time base)."""
    return time.time_ns()


def current_span_ids() -> tuple[str | None, str | None]:
    """Return the current span's trace id and span id as hex, or Nones when not traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def log_step(
    conn: sqlite3.Connection,
    *,
    saga_id: str,
    service: str,
    step: str,
    kind: str,
    status: str,
    start_ns: int,
    detail: str = "",
) -> None:
    """Append one row to the step log (the learner's timeline is drawn from these rows)."""
    trace_id, span_id = current_span_ids()
    conn.execute(
        "INSERT INTO step_log (saga_id, service, step, kind, status, detail, start_ns, end_ns,"
        " trace_id, span_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (saga_id, service, step, kind, status, detail, start_ns, now_ns(), trace_id, span_id),
    )
