"""Receive HAProxy's per-request log lines on a unix stream socket and decode them.

HAProxy's ring buffer (``proxy.config.global_section``) connects to this
socket and streams one line a request; every proxy of a sandbox may share it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
LINE_LIMIT = 1 << 16


class LogReceiver:
    """Listen on a unix socket; call ``on_record`` with each JSON line any proxy sends."""

    def __init__(self, path: Path, on_record: Callable[[dict], None]) -> None:
        self.path = Path(path)
        self._on_record = on_record
        self._server: asyncio.base_events.Server | None = None
        self.received = 0
        self.malformed = 0

    async def start(self) -> None:
        """Start listening (before any proxy starts, so none misses its first lines)."""
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._connection, str(self.path), limit=LINE_LIMIT
        )

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self._line(line)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def _line(self, line: bytes) -> None:
        text = line.decode(errors="replace").strip()
        if not text.startswith("{"):
            return  # HAProxy's own notices ("Proxy x stopped"): not requests
        self.received += 1
        try:
            record = json.loads(text)
        except ValueError:
            self.malformed += 1
            if self.malformed <= 3:
                log.warning("unreadable HAProxy log line: %s", text[:200])
            return
        try:
            self._on_record(record)
        except Exception:
            log.exception("handling a HAProxy log record failed")

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)
