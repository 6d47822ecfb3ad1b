"""Count the bytes a TCP connection really carries, by relaying it through a local socket.

Body sizes leave out what each protocol adds around the body: HTTP/1.1's text
request line and headers, HTTP/2's binary frames, HPACK-compressed headers,
gRPC's 5-byte message prefix and trailers, and the connection's own control
frames (SETTINGS, WINDOW_UPDATE, PING). A relay between client and server
counts all of it, whatever the protocol, without parsing any of it.
"""

from __future__ import annotations

import asyncio
import contextlib


class WireMeter:
    """A 127.0.0.1 TCP relay to one upstream address that counts bytes each way."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self.sent = 0  # client -> server
        self.received = 0  # server -> client
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._pumps: set[asyncio.Task] = set()

    async def start(self) -> str:
        """Start listening; return the address clients should dial instead of the upstream."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        for task in list(self._pumps):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    def snapshot(self) -> tuple[int, int]:
        """Return (bytes sent, bytes received) so far."""
        return self.sent, self.received

    async def settle(self, quiet_s: float = 0.03, limit_s: float = 0.5) -> None:
        """Wait until no byte has moved for quiet_s, so trailing frames are counted too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while loop.time() < deadline:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), quiet_s)
            except TimeoutError:
                return

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.close()
            return
        pumps = [
            asyncio.create_task(self._pump(client_reader, server_writer, "sent")),
            asyncio.create_task(self._pump(server_reader, client_writer, "received")),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if direction == "sent":
                    self.sent += len(chunk)
                else:
                    self.received += len(chunk)
                self._changed.set()
                writer.write(chunk)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()
