"""The projector's own SQLite store: each view's state and the offset it has reached.

State and offset are written in one transaction, so after a crash a view
resumes exactly after the last event it applied: no event counted twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS views (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, next_offset INTEGER NOT NULL,
    events INTEGER NOT NULL, state TEXT NOT NULL, versions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, next_offset INTEGER NOT NULL,
    events INTEGER NOT NULL, state TEXT NOT NULL, versions TEXT NOT NULL,
    taken_at REAL NOT NULL);
"""


class ProjectorStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def load(self) -> list[tuple[str, str, int, int, dict, dict]]:
        rows = self._db.execute(
            "SELECT name, kind, next_offset, events, state, versions FROM views"
        )
        return [(n, k, o, e, json.loads(s), json.loads(v)) for n, k, o, e, s, v in rows.fetchall()]

    def save(
        self, name: str, kind: str, next_offset: int, events: int, state: dict, versions: dict
    ) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO views VALUES (?, ?, ?, ?, ?, ?)",
                (name, kind, next_offset, events, json.dumps(state), json.dumps(versions)),
            )

    def drop(self, name: str) -> None:
        self._db.execute("DELETE FROM views WHERE name = ?", (name,))

    def save_snapshot(
        self, name: str, kind: str, next_offset: int, events: int, state: dict, versions: dict
    ) -> None:
        """Keep a view's state as of ``next_offset``, replacing its previous snapshot."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    kind,
                    next_offset,
                    events,
                    json.dumps(state),
                    json.dumps(versions),
                    time.time(),
                ),
            )

    def load_snapshot(self, name: str) -> tuple[str, int, int, dict, dict] | None:
        """Return a view's snapshot as (kind, next_offset, events, state, versions), or None."""
        row = self._db.execute(
            "SELECT kind, next_offset, events, state, versions FROM snapshots WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        kind, offset, events, state, versions = row
        return kind, offset, events, json.loads(state), json.loads(versions)
