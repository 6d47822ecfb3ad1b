"""Publish with publisher confirms, and keep publishing across broker connection loss.

A message counts as sent only when the broker confirms it. If the connection
drops before the confirm arrives, the fate of the message is unknown, so it is
sent again after reconnecting: a confirmed message is never lost, and a message
may arrive twice. That is at-least-once delivery; consumers dedupe by message id.

A blocking connection only answers heartbeats while someone drives its I/O, and
a publisher sits idle between orders; the broker closes a connection after two
missed heartbeats. So a keeper thread drives the idle connection three times a
heartbeat timeout, under the same lock as publishing.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from .connection import CONNECTION_ERRORS, HEARTBEAT_S, connect
from .tracing import inject_headers

log = logging.getLogger(__name__)

Declare = Callable[[BlockingChannel], None]


class PublishRefused(Exception):
    """The broker refused the message (nack, or no queue to route it to)."""


class PublishFailed(Exception):
    """The message could not be confirmed before the deadline (broker unreachable)."""


@dataclass
class PublisherStats:
    published: int = 0
    reconnects: int = 0
    resent: int = 0
    events: list[str] = field(default_factory=list)


class Publisher:
    """Publish messages on one confirm-mode channel; use from one thread at a time."""

    def __init__(
        self,
        amqp_url: str,
        *,
        name: str = "publisher",
        declare: Declare | None = None,
        retry_deadline_s: float = 15.0,
        heartbeat_s: int = HEARTBEAT_S,
    ) -> None:
        self._url = amqp_url
        self._heartbeat_s = heartbeat_s
        self._name = name
        self._declare = declare
        self._retry_deadline_s = retry_deadline_s
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None
        self.stats = PublisherStats()

    def connect(self) -> None:
        """Connect and declare now, so the first publish does not pay for it."""
        with self._lock:
            self._open()

    def _open(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop()
        self._closed.clear()
        if self._keeper is None or not self._keeper.is_alive():
            self._keeper = threading.Thread(
                target=self._keep_alive, name=f"{self._name}-heartbeat", daemon=True
            )
            self._keeper.start()
        self._connection = connect(
            self._url,
            name=self._name,
            deadline_s=self._retry_deadline_s,
            heartbeat=self._heartbeat_s,
        )
        channel = self._connection.channel()
        channel.confirm_delivery()
        if self._declare is not None:
            self._declare(channel)
        self._channel = channel
        return channel

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | dict,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish one message and return once the broker has confirmed it."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            timestamp=int(time.time()),
            headers=inject_headers(headers),
        )
        give_up = time.monotonic() + self._retry_deadline_s
        attempt = 0
        with self._lock:
            while True:
                attempt += 1
                try:
                    channel = self._open()
                    # In confirm mode a blocking basic_publish returns only after the
                    # broker's ack; a nack or a return raises instead.
                    channel.basic_publish(exchange, routing_key, body, properties, mandatory)
                    self.stats.published += 1
                    if attempt > 1:
                        self.stats.resent += 1
                    return
                except pika.exceptions.UnroutableError as error:
                    raise PublishRefused(f"no queue bound for {routing_key!r}") from error
                except pika.exceptions.NackError as error:
                    raise PublishRefused("the broker refused the message") from error
                except CONNECTION_ERRORS as error:
                    self._channel = None
                    self.stats.reconnects += 1
                    self.stats.events = [*self.stats.events[-19:], f"connection lost: {error!r}"]
                    log.warning("publish of %s failed (%r); reconnecting", message_id, error)
                    if time.monotonic() > give_up:
                        raise PublishFailed(
                            f"message {message_id} not confirmed within "
                            f"{self._retry_deadline_s:.0f}s: broker unreachable"
                        ) from error
                    time.sleep(min(0.1 * attempt, 1.0))

    def _keep_alive(self) -> None:
        """Answer heartbeats while no publish is running; a publish drives I/O itself.

        Three turns a heartbeat timeout: well inside the broker's patience (two
        missed heartbeats), and rare enough that an idle sandbox costs next to nothing.
        """
        while not self._closed.wait(max(1.0, self._heartbeat_s / 3)):
            if not self._lock.acquire(blocking=False):
                continue  # a publish holds the connection and drives it
            try:
                if self._connection is not None and self._connection.is_open:
                    self._connection.process_data_events(time_limit=0)
            except CONNECTION_ERRORS as error:
                # Found while idle: the next publish reconnects before sending.
                self._channel = None
                log.warning("idle connection %s lost (%r)", self._name, error)
            finally:
                self._lock.release()

    def close(self) -> None:
        """Stop the keeper and close the connection, ignoring one that is already gone."""
        self._closed.set()
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except CONNECTION_ERRORS:
                pass


class AsyncPublisher:
    """Run a Publisher on its own thread so an asyncio server can await confirms."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        # One thread: a pika channel must only ever be used by one thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amqp-publish")

    async def publish(self, exchange: str, routing_key: str, body: bytes | dict, **kw: Any) -> None:
        """Publish and await the broker's confirm, carrying the caller's trace context."""
        call = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._executor,
            lambda: call.run(self.publisher.publish, exchange, routing_key, body, **kw),
        )

    async def connect(self) -> None:
        """Connect and declare the topology on the publishing thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.publisher.connect)

    async def close(self) -> None:
        """Close the connection on the publishing thread, then stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.publisher.close)
        self._executor.shutdown(wait=False)
