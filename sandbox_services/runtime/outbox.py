"""Batch spans and metrics from a service process to the sandbox outbox list in Redis.

A background thread does the Redis I/O so the request path only appends to a
list under a lock. The thread sleeps until there is something to send and sends
it at once if it has not sent in the last ``interval_s``; otherwise it waits out
the interval (or until ``max_batch`` items queue up) so one RPUSH carries a
burst of spans.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any
from collections.abc import Mapping

import redis

log = logging.getLogger(__name__)
OUTBOX_TTL_S = 300


class OutboxWriter:
    """Send span dicts and metrics to ``lab:sb:<id>:outbox`` on a background thread."""

    def __init__(
        self, redis_url: str, key: str, *, interval_s: float = 0.02, max_batch: int = 100
    ) -> None:
        self._redis_url = redis_url
        self._key = key
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._start()
        # A forked child (ctx.fork of a runner) inherits our state but not the
        # thread: start afresh there, or its spans would sit in a dead queue.
        os.register_at_fork(after_in_child=self._after_fork)

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._spans: list[dict] = []
        self._metrics: dict[str, Mapping[str, Any]] = {}
        self._pending = threading.Event()
        self._full = threading.Event()
        self._closed = False
        self._warned = False
        self._redis = redis.Redis.from_url(self._redis_url)
        self._thread = threading.Thread(target=self._run, name="lab-outbox", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        if not self._closed:
            self._start()

    def put_span(self, item: dict) -> None:
        """Queue one finished span (wire shape without seq and peer)."""
        with self._lock:
            self._spans.append(item)
            count = len(self._spans)
        if count == 1:
            self._pending.set()
        if count >= self._max_batch:
            self._full.set()

    def put_metrics(self, source: str, values: Mapping[str, Any]) -> None:
        """Queue metrics of ``source``; only the newest values per flush are sent."""
        with self._lock:
            first = not self._spans and not self._metrics
            self._metrics[source] = dict(values)
        if first:
            self._pending.set()

    def _run(self) -> None:
        last_flush = float("-inf")
        while not self._closed:
            self._pending.wait()
            # The first span after a quiet spell goes at once (a single call
            # shows up quickest); within interval_s of a flush, spans gather.
            wait_s = last_flush + self._interval_s - time.monotonic()
            if wait_s > 0:
                self._full.wait(wait_s)
            self._pending.clear()
            self._full.clear()
            self.flush()
            last_flush = time.monotonic()

    def flush(self) -> None:
        """Send everything queued now, on the calling thread."""
        with self._flush_lock:
            with self._lock:
                spans, self._spans = self._spans, []
                metrics, self._metrics = self._metrics, {}
            payloads = [
                json.dumps({"kind": "spans", "items": spans[i : i + self._max_batch]})
                for i in range(0, len(spans), self._max_batch)
            ]
            payloads += [
                json.dumps({"kind": "metrics", "source": source, "values": values}, default=str)
                for source, values in metrics.items()
            ]
            if not payloads:
                return
            try:
                with self._redis.pipeline(transaction=False) as pipe:
                    pipe.rpush(self._key, *payloads)
                    # A sandbox that died without cleaning up must not leave it forever.
                    pipe.expire(self._key, OUTBOX_TTL_S)
                    pipe.execute()
            except redis.RedisError as error:
                # Tracing must never take a service down; say it once and drop.
                if not self._warned:
                    log.warning("outbox %s unreachable, dropping spans: %s", self._key, error)
                    self._warned = True

    def close(self, timeout_s: float = 2.0) -> None:
        """Flush what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._pending.set()
        self._full.set()
        self._thread.join(timeout_s)
        self.flush()
