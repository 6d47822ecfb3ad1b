"""Read the services' SQLite files after a run, read-only: the evidence the invariants judge.

Only experiments and hooks read these, and only to report; no service ever
opens another service's file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox_services.saga.store import database_path


@contextmanager
def read_only(workdir: Path, service: str) -> Iterator[sqlite3.Connection | None]:
    """Open a service's file read-only; yield None if the service never created it."""
    path = database_path(workdir, service)
    if not path.exists():
        yield None
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def rows_for(
    conn: sqlite3.Connection | None, query: str, saga_ids: list[str] | None
) -> list[sqlite3.Row]:
    """Run ``query`` restricted to these sagas (all sagas when None)."""
    if conn is None:
        return []
    if saga_ids is None:
        return conn.execute(query).fetchall()
    joiner = " AND" if " WHERE " in query else " WHERE"
    rows: list[sqlite3.Row] = []
    for i in range(0, len(saga_ids), 500):
        chunk = saga_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(f"{query}{joiner} saga_id IN ({marks})", chunk).fetchall())
    return rows
