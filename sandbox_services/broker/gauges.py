"""Per-queue gauges without the management plugin.

Depth and consumer count come from a passive queue.declare; unacked counts and
publish/deliver totals come from the services themselves, which flush small
counters to Redis twice a second while they change. The metrics hook turns
totals into rates. A service with nothing new to count writes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable

import pika
import redis

from ..runtime import keys
from .connection import CONNECTION_ERRORS, connect

FLUSH_EVERY_S = 0.5
# An unacked gauge from a replica that stopped flushing (killed) stops counting after this.
INFLIGHT_TTL_S = 3


class GaugeReporter:
    """Count publishes, deliveries and unacked messages in-process; flush them to Redis."""

    def __init__(self, redis_url: str, sandbox_id: str, owner: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._sandbox_id = sandbox_id
        self._owner = owner
        self._pending: dict[str, int] = {}
        self._inflight: dict[str, int] = {}
        self._sent_inflight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Set when there is something to flush; an idle service's thread sleeps on it.
        self._dirty = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, queue: str, field: str, n: int = 1) -> None:
        """Add ``n`` to a queue's total (fields: published, delivered)."""
        with self._lock:
            self._pending[f"{queue}|{field}"] = self._pending.get(f"{queue}|{field}", 0) + n
            self._dirty.set()

    def add_many(self, queues, field: str, n: int = 1) -> None:
        """Add ``n`` to the same total of several queues (one publish routed to each)."""
        for queue in queues:
            self.add(queue, field, n)

    def inflight(self, queue: str, delta: int) -> None:
        """Move this process's count of delivered but unacked messages on a queue."""
        with self._lock:
            self._inflight[queue] = max(0, self._inflight.get(queue, 0) + delta)
            self._dirty.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gauges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        self.flush()

    def _run(self) -> None:
        # Wait for something to say, then gather it for FLUSH_EVERY_S: one write
        # per half second while messages flow, none while the service is idle.
        while self._dirty.wait() and not self._stop.wait(FLUSH_EVERY_S):
            self.flush()

    def flush(self) -> None:
        """Send pending totals and the current unacked gauge to Redis."""
        with self._lock:
            pending, self._pending = self._pending, {}
            # An unacked count is refreshed while above zero (its key expires so a
            # killed process stops counting), and written once more when it falls to zero.
            inflight = {
                queue: n
                for queue, n in self._inflight.items()
                if n or self._sent_inflight.get(queue)
            }
            if not any(self._inflight.values()):
                self._dirty.clear()  # under the lock: an add() after this sets it again
            self._sent_inflight = dict(self._inflight)
        if not pending and not inflight:
            return
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, n in pending.items():
                pipe.hincrby(keys.amqp_counts(self._sandbox_id), key, n)
            for queue, n in inflight.items():
                key = keys.amqp_inflight(self._sandbox_id, queue, self._owner)
                pipe.set(key, n, ex=INFLIGHT_TTL_S)
            pipe.execute()
        except redis.RedisError:
            # Gauges are best effort; put the totals back for the next flush.
            with self._lock:
                for key, n in pending.items():
                    self._pending[key] = self._pending.get(key, 0) + n
                self._dirty.set()


# Kept between samples (one gauges process per watched sandbox asks every second):
# a connection, a channel and a Redis client each, made again only when lost. A
# channel opened and closed per queue, and a Redis client per sample, cost a
# watched sandbox several milliseconds of CPU a second, and the broker as much.
_connections: dict[str, pika.BlockingConnection] = {}
_channels: dict[str, object] = {}
_redis_clients: dict[str, redis.Redis] = {}


class _QuietMissingQueue(logging.Filter):
    """Drop pika's warning for a 404 on a passive declare: for a gauge it is an answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "NOT_FOUND - no queue" not in record.getMessage()


# Gauges ask every second; a queue not declared yet would log a warning each time.
logging.getLogger("pika.channel").addFilter(_QuietMissingQueue())


def _channel(amqp_url: str):
    channel = _channels.get(amqp_url)
    if channel is not None and channel.is_open:
        return channel
    connection = _connections.get(amqp_url)
    if connection is None or not connection.is_open:
        # Driven only when sampling: with heartbeats on, a pause of 10 s (no one
        # watching) let the broker drop it, and pika logged an error on the next
        # sample. A broker that is really gone fails the next call.
        connection = connect(amqp_url, name="gauges", deadline_s=2.0, heartbeat=0)
        _connections[amqp_url] = connection
    _channels[amqp_url] = channel = connection.channel()
    return channel


def _redis(redis_url: str) -> redis.Redis:
    client = _redis_clients.get(redis_url)
    if client is None:
        _redis_clients[redis_url] = client = redis.Redis.from_url(redis_url)
    return client


def _declare_counts(amqp_url: str, name: str) -> tuple[int, int] | None:
    """Return (ready messages, consumers) of a queue, or None if it does not exist."""
    try:
        channel = _channel(amqp_url)
    except CONNECTION_ERRORS:
        return None
    try:
        ok = channel.queue_declare(name, passive=True)
        return ok.method.message_count, ok.method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return None  # 404: not declared (yet), or already deleted; the broker closed the channel
    except CONNECTION_ERRORS:
        _connections.pop(amqp_url, None)
        _channels.pop(amqp_url, None)
        return None


def queue_gauges(
    *,
    amqp_url: str,
    redis_url: str,
    sandbox_id: str,
    prefix: str,
    queues: Iterable[str],
    streams: Iterable[str] = (),
) -> dict:
    """Return ``{"queues": {short: {depth, unacked, consumers, publish_rate, deliver_rate}}}``.

    For a stream, depth is the number of messages appended (a stream keeps what it
    delivered, so its ready count says nothing).
    """
    client = _redis(redis_url)
    now = time.time()
    counts = client.hgetall(keys.amqp_counts(sandbox_id))
    totals = {k.decode(): int(v) for k, v in counts.items()}
    unacked: dict[str, int] = {}
    for key in client.scan_iter(match=keys.amqp_inflight_pattern(sandbox_id), count=200):
        queue = keys.amqp_inflight_queue(key.decode())
        value = client.get(key)
        unacked[queue] = unacked.get(queue, 0) + int(value or 0)
    last_sample = keys.amqp_last_sample(sandbox_id)
    last = json.loads(client.get(last_sample) or "{}")
    client.set(last_sample, json.dumps({"t": now, "totals": totals}), ex=60)
    elapsed = now - last.get("t", now)

    def rate(queue: str, field: str) -> float:
        if elapsed <= 0:
            return 0.0
        before = last.get("totals", {}).get(f"{queue}|{field}", 0)
        return round(max(0, totals.get(f"{queue}|{field}", 0) - before) / elapsed, 2)

    out: dict[str, dict] = {}
    stream_names = set(streams)
    for short in [*queues, *stream_names]:
        counts = _declare_counts(amqp_url, f"{prefix}{short}")
        depth, consumers = counts if counts else (0, 0)
        if short in stream_names:
            depth = totals.get(f"{short}|published", 0)
        out[short] = {
            "depth": int(depth),
            "unacked": unacked.get(short, 0),
            "consumers": int(consumers),
            "publish_rate": rate(short, "published"),
            "deliver_rate": rate(short, "delivered"),
        }
    return {"queues": out}


def forget_gauges(redis_url: str, sandbox_id: str) -> None:
    """Delete a sandbox's gauge keys from Redis."""
    client = redis.Redis.from_url(redis_url)
    names = [keys.amqp_counts(sandbox_id), keys.amqp_last_sample(sandbox_id)]
    names += list(client.scan_iter(match=keys.amqp_inflight_pattern(sandbox_id), count=200))
    client.delete(*names)
