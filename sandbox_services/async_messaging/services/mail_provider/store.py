"""The provider's own SQLite store: every email it sent, and the idempotency keys it honours.

It is the provider's record, not the consumer's: the two never share a transaction,
which is the point of the experiment that uses it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from .interface import SendReceipt, SendRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, recipient TEXT NOT NULL,
    idempotency_key TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY, send_id INTEGER NOT NULL, replays INTEGER NOT NULL DEFAULT 0);
"""


class MailStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def send(self, request: SendRequest) -> SendReceipt:
        """Record one sent email; with a key seen before, return its first send instead."""
        # The key and the send commit together, as a real provider's must: a key is
        # honoured only if it is stored atomically with the effect it stands for.
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if request.idempotency_key is not None:
                row = self._db.execute(
                    "SELECT send_id FROM idempotency_keys WHERE key = ?",
                    (request.idempotency_key,),
                ).fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE idempotency_keys SET replays = replays + 1 WHERE key = ?",
                        (request.idempotency_key,),
                    )
                    return SendReceipt(row[0], replayed=True)
            send_id = self._db.execute(
                "INSERT INTO sends (message_id, recipient, idempotency_key, at) VALUES (?, ?, ?, ?)",
                (request.message_id, request.recipient, request.idempotency_key, time.time()),
            ).lastrowid
            if request.idempotency_key is not None:
                self._db.execute(
                    "INSERT INTO idempotency_keys (key, send_id) VALUES (?, ?)",
                    (request.idempotency_key, send_id),
                )
            return SendReceipt(send_id, replayed=False)

    def stats(self) -> dict:
        with self._lock:
            sends = self._db.execute("SELECT COUNT(*) FROM sends").fetchone()[0]
            distinct = self._db.execute("SELECT COUNT(DISTINCT message_id) FROM sends").fetchone()[
                0
            ]
            replays = self._db.execute(
                "SELECT COALESCE(SUM(replays), 0) FROM idempotency_keys"
            ).fetchone()[0]
        return {"sends": sends, "distinct_messages": distinct, "replayed": replays}

    def sends_per_message(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT message_id, COUNT(*) FROM sends GROUP BY message_id")
            return dict(rows.fetchall())

    def close(self) -> None:
        self._db.close()
