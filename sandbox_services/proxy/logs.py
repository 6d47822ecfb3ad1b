"""Receive HAProxy's per-request log lines on a unix stream socket and decode them.

HAProxy's ring buffer (``proxy.config.global_section``) connects to this
socket and streams one line a request; every proxy of a sandbox may share it.

Lines are read in batches. Reading each line as it came woke this process
once per request per proxy, and on this machine a wakeup costs more than
the line: the control plane spent ~0.2 ms of CPU a line, and the backend's
sidecar, which logs as its response leaves, woke it just when the caller's
sidecar needed the CPU to carry that response back. Now the first line
after a quiet spell is read at once (a single call's span shows up
quickest); after each read the connection rests for ``BATCH_INTERVAL_S``
while the kernel keeps what arrives, and the next read takes it all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
LINE_LIMIT = 1 << 16
# At most one read per connection per interval under load: spans reach the
# page up to this much later, next to the outbox's 20 ms and the fan-out's 30 ms.
BATCH_INTERVAL_S = 0.05


class LogReceiver:
    """Listen on a unix socket; call ``on_record`` with each JSON line any proxy sends."""

    def __init__(
        self,
        path: Path,
        on_record: Callable[[dict], None],
        *,
        batch_interval_s: float = BATCH_INTERVAL_S,
    ) -> None:
        self.path = Path(path)
        self._on_record = on_record
        self._batch_interval_s = batch_interval_s
        self._server: asyncio.base_events.Server | None = None
        self.received = 0
        self.malformed = 0
        self.reads = 0

    async def start(self) -> None:
        """Start listening (before any proxy starts, so none misses its first lines)."""
        self.path.unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _LineProtocol(self, self._batch_interval_s), str(self.path)
        )

    def take(self, lines: list[bytes]) -> None:
        """Handle the whole lines one read of a proxy's connection brought."""
        self.reads += 1
        for line in lines:
            if not line.startswith(b"{"):
                continue  # HAProxy's own notices ("Proxy x stopped"): not requests
            self.received += 1
            try:
                record = json.loads(line)
            except ValueError:
                self.malformed += 1
                if self.malformed <= 3:
                    log.warning("unreadable HAProxy log line: %s", line[:200])
                continue
            try:
                self._on_record(record)
            except Exception:
                log.exception("handling a HAProxy log record failed")

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)


class _LineProtocol(asyncio.Protocol):
    """One proxy's connection: split what arrives into lines, then rest before reading again."""

    def __init__(self, receiver: LogReceiver, interval_s: float) -> None:
        self._receiver = receiver
        self._interval_s = interval_s
        self._partial = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > LINE_LIMIT:
            self._partial = b""  # no line is this long: drop it rather than grow
            self._receiver.malformed += 1
        self._receiver.take(lines)
        if self._interval_s > 0 and self._transport is not None:
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(self._interval_s, self._resume)

    def _resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
