"""A simulated wide-area link between the learner's client and the gateway.

A TCP relay in the experiment's own process: every chunk of bytes waits
half the round-trip time before it is passed on, in each direction, in
order, and a new connection waits one round trip before its first byte goes
through (TCP's handshake). It counts what crossed it: connections, bytes
each way, requests (each time the client speaks after the server has, or
first on a connection) and round trips in sequence (each time the client
speaks while no earlier request is waiting on any connection: three requests
sent at once on three connections are three requests but one round trip of
waiting). So "fewer round trips" is read off the link, not assumed.

What it leaves out, and the lesson says so: loss, bandwidth limits, TCP
slow start and TLS handshakes (a real first request over TLS 1.3 pays one
more round trip; TLS 1.2 two).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class LinkCounters:
    connections: int = 0
    requests: int = 0
    round_trips: int = 0  # in sequence: the waits a user sits through
    waiting: int = 0  # connections with a request sent and no answer yet
    bytes_up: int = 0  # client to gateway
    bytes_down: int = 0  # gateway to client
    by_connection: list = field(default_factory=list)

    def snapshot(self) -> dict:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "round_trips": self.round_trips,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


def difference(after: dict, before: dict) -> dict:
    return {key: after[key] - before[key] for key in after}


class WanLink:
    """Relay 127.0.0.1:<port> to a target port with ``rtt_ms`` of delay per round trip."""

    def __init__(self, target_port: int, rtt_ms: float) -> None:
        self.target_port = target_port
        self.one_way_s = rtt_ms / 2000
        self.counters = LinkCounters()
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader, client_writer) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.counters.connections += 1
        self.counters.round_trips += 1  # the handshake
        state = {"last": "down", "waiting": False}  # who spoke last on this connection
        try:
            await asyncio.sleep(self.one_way_s * 2)
            try:
                server_reader, server_writer = await asyncio.open_connection(
                    "127.0.0.1", self.target_port
                )
            except OSError:
                client_writer.close()  # the far end refused: so does the link, a round trip late
                return
            await asyncio.gather(
                self._pipe(client_reader, server_writer, "up", state),
                self._pipe(server_reader, client_writer, "down", state),
                return_exceptions=True,
            )
        finally:
            if state["waiting"]:
                self.counters.waiting -= 1
            client_writer.close()
            self._tasks.discard(task)

    async def _pipe(self, reader, writer, direction: str, state: dict) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if chunk is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            writer.close()

        delivering = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                if direction == "up":
                    self.counters.bytes_up += len(chunk)
                    if state["last"] == "down":
                        self.counters.requests += 1
                        if self.counters.waiting == 0:
                            self.counters.round_trips += 1
                        if not state["waiting"]:
                            state["waiting"] = True
                            self.counters.waiting += 1
                else:
                    self.counters.bytes_down += len(chunk)
                    if state["waiting"]:
                        state["waiting"] = False
                        self.counters.waiting -= 1
                state["last"] = direction
                queue.put_nowait((time.monotonic() + self.one_way_s, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait((0.0, None))
            try:
                await delivering
            except (ConnectionError, OSError):
                pass
