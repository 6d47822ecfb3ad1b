"""A consumer's own SQLite store: its effects, the message ids it handled, its settings.

It lives in the sandbox workdir, so it survives a crash and a restart of the
consumer. Replicas of one consumer share it; no other service reads it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from .interface import ConsumerSettings

# Replicas share the store: a setting changed through one reaches the others this fast.
SETTINGS_TTL_S = 0.5

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, replica INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS handled (message_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class ConsumerStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (the lesson's fault), not a power cut.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._settings: ConsumerSettings | None = None
        self._settings_read_at = 0.0
        # The consuming thread and the HTTP side share this connection. One at a time:
        # a settings write must never commit half of an effect's transaction.
        self._lock = threading.RLock()

    def record_effect(self, message_id: str, replica: int, *, idempotent: bool) -> bool:
        """Record that the work was done; with idempotency, only the first time. Return done."""
        # The effect and the dedup record commit together: a crash leaves both or neither.
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            first = (
                self._db.execute(
                    "INSERT OR IGNORE INTO handled (message_id) VALUES (?)", (message_id,)
                ).rowcount
                == 1
            )
            if idempotent and not first:
                return False
            self._db.execute(
                "INSERT INTO effects (message_id, replica, at) VALUES (?, ?, ?)",
                (message_id, replica, time.time()),
            )
            return True

    def has_handled(self, message_id: str) -> bool:
        """Tell whether a message's effect was committed (the check before an outside call)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM handled WHERE message_id = ?", (message_id,)
            ).fetchone()
        return row is not None

    def bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                (name, n, n),
            )

    def settings(self) -> ConsumerSettings:
        """Return the settings, re-read at most every SETTINGS_TTL_S (they are read per message)."""
        now = time.monotonic()
        if self._settings is None or now - self._settings_read_at > SETTINGS_TTL_S:
            with self._lock:
                rows = dict(self._db.execute("SELECT key, value FROM settings").fetchall())
            self._settings = ConsumerSettings(**{k: json.loads(v) for k, v in rows.items()})
            self._settings_read_at = now
        return self._settings

    def configure(self, **values: object) -> ConsumerSettings:
        with self._lock, self._db:
            for key, value in values.items():
                self._db.execute(
                    "INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value))
                )
        self._settings = None
        return self.settings()

    def stats(self) -> dict:
        with self._lock:
            effects = self._db.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
            distinct = self._db.execute("SELECT COUNT(*) FROM handled").fetchone()[0]
            by_replica = dict(
                self._db.execute(
                    "SELECT replica, COUNT(*) FROM effects GROUP BY replica"
                ).fetchall()
            )
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {
            "effects": effects,
            "distinct": distinct,
            "duplicates": effects - distinct,
            "by_replica": {str(k): v for k, v in by_replica.items()},
            "counters": counters,
        }

    def handled_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT message_id FROM handled")]

    def effects_per_message(self) -> dict[str, int]:
        rows = self._db.execute("SELECT message_id, COUNT(*) FROM effects GROUP BY message_id")
        return dict(rows.fetchall())

    def close(self) -> None:
        self._db.close()

    def reset(self) -> None:
        with self._lock, self._db:
            for table in ("effects", "handled", "counters"):
                self._db.execute(f"DELETE FROM {table}")
