"""The supervisor's span pipeline: outbox -> seq and peer -> replay set -> channel layer.

Two stages run side by side so a slow channel layer never holds up
sequencing: ``pump`` pops the outbox, numbers spans (the sandbox's only
sequencer: strictly increasing, gap-free), names their peers and keeps them in
the replay set; ``fan_out`` sends them in seq order, merging whatever queued up
meanwhile into fewer, larger messages. A span is always kept before it is sent,
so a browser that hears of seq N can replay everything up to N.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from . import keys

log = logging.getLogger(__name__)

SPANS_KEPT = 20_000
SEND_CHUNK = 200  # spans per channel-layer message
# After a send, what arrives within this long goes out together in the next one.
# Each channel-layer message costs the supervisor, Redis and daphne about a
# millisecond or two whatever it carries; a sandbox's five services flushing
# their outboxes apart made 1.6 spans a message when a class ran at once, and
# daphne fell a second behind. The first message after a quiet spell goes at once.
FAN_OUT_INTERVAL_S = 0.03
POP_COUNT = 1000  # outbox payloads per round trip
DRAIN_TIMEOUT_S = 5.0
# A push wakes the wait at once; the timeout only bounds a dead connection's silence
# (at 1 s, the wake-ups of 60 idle sandboxes' pumps were a visible share of idle CPU).
OUTBOX_WAIT_S = 30
BACKGROUND = "background"  # the run of a span that no experiment run started
TRACES_REMEMBERED = 5000  # trace id -> run, for spans whose process lost the baggage


def _port_of_url(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def peer_of(span: dict, port_names: dict[int, str]) -> str | None:
    """Name the other side of a client or messaging span, when it is in this sandbox."""
    if span.get("protocol") == "amqp":
        return "rabbitmq"
    if span.get("kind") != "client":
        return None
    attributes = span.get("attributes") or {}
    port = attributes.get("server.port") or attributes.get("net.peer.port")
    if port is None:
        url = attributes.get("url.full") or attributes.get("http.url")
        port = _port_of_url(url) if isinstance(url, str) else None
    try:
        return port_names.get(int(port)) if port is not None else None
    except (TypeError, ValueError):
        return None


class SpanPipeline:
    """Sequence, keep and fan out the spans and metrics of one sandbox."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sandbox_id: str,
        port_names: dict[int, str],
        send: Callable[[dict], Awaitable[None]],
    ) -> None:
        self.seq = 0
        self._redis = redis
        self._outbox = keys.sandbox_outbox(sandbox_id)
        self._kept = keys.sandbox_spans(sandbox_id)
        self._port_names = port_names
        self._send = send
        self._run_of_trace: dict[str, str] = {}
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._last_fan_out = float("-inf")
        self._newest_metrics: dict[str, dict] = {}  # source -> its last metrics message

    async def pump(self) -> None:
        """Pop the outbox as payloads arrive; sequence and keep them."""
        while True:
            popped = await self._redis.blmpop(
                OUTBOX_WAIT_S, 1, self._outbox, direction="LEFT", count=POP_COUNT
            )
            if popped is not None:
                await self._absorb(popped[1])

    async def drain(self) -> None:
        """Take what is left in the outbox and wait until it has all been sent."""
        while raw := await self._redis.lpop(self._outbox, POP_COUNT):
            await self._absorb(raw)
        try:
            await asyncio.wait_for(self._queue.join(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("%d messages not sent before the end", self._queue.qsize())

    async def _absorb(self, raw: list[bytes]) -> None:
        spans: list[dict] = []
        for payload in raw:
            try:
                message = json.loads(payload)
            except ValueError:
                log.warning("dropping a malformed outbox payload")
                continue
            if message.get("kind") == "spans":
                spans.extend(message.get("items", ()))
            elif message.get("kind") == "metrics":
                metrics = {
                    "type": "sandbox.metrics",
                    "source": message.get("source"),
                    "metrics": message.get("values", {}),
                }
                self._newest_metrics[str(metrics["source"])] = metrics
                self._queue.put_nowait(metrics)
        if spans:
            await self._keep(spans)
            self._queue.put_nowait({"type": "sandbox.spans", "items": spans})

    async def _keep(self, spans: list[dict]) -> None:
        members = {}
        for span in spans:
            self.seq += 1
            span["seq"] = self.seq
            span["peer"] = peer_of(span, self._port_names)
            span["run"] = self._run_of(span)
            members[json.dumps(span, separators=(",", ":"))] = self.seq
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._kept, members)
            if self.seq > SPANS_KEPT:
                pipe.zremrangebyrank(self._kept, 0, -SPANS_KEPT - 1)
            await pipe.execute()

    def resend_metrics(self) -> None:
        """Send each source's newest metrics again (a page just opened: gauges change rarely)."""
        for metrics in self._newest_metrics.values():
            self._queue.put_nowait(metrics)

    def _run_of(self, span: dict) -> str:
        """Return the span's run: its own mark, else its trace's, else background.

        A message relayed later from an outbox row carries its trace context but
        not always the baggage; its trace still tells which run it belongs to.
        """
        trace_id = span.get("trace_id", "")
        run = span.get("run")
        if run and run != BACKGROUND:
            if trace_id not in self._run_of_trace:
                if len(self._run_of_trace) >= TRACES_REMEMBERED:
                    self._run_of_trace.pop(next(iter(self._run_of_trace)))
                self._run_of_trace[trace_id] = run
            return run
        return self._run_of_trace.get(trace_id, BACKGROUND)

    async def fan_out(self) -> None:
        """Send queued messages in order, merging queued span batches."""
        loop = asyncio.get_running_loop()
        while True:
            messages = [await self._queue.get()]
            wait_s = self._last_fan_out + FAN_OUT_INTERVAL_S - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            while not self._queue.empty():
                messages.append(self._queue.get_nowait())
            try:
                spans = [
                    span for m in messages if m["type"] == "sandbox.spans" for span in m["items"]
                ]
                for start in range(0, len(spans), SEND_CHUNK):
                    await self._send(
                        {"type": "sandbox.spans", "items": spans[start : start + SEND_CHUNK]}
                    )
                for message in messages:
                    if message["type"] != "sandbox.spans":
                        await self._send(message)
            finally:
                self._last_fan_out = loop.time()
                for _ in messages:
                    self._queue.task_done()
