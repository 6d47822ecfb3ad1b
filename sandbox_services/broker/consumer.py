"""Consume a queue with manual acks and a prefetch window, reconnecting after broker loss.

The handler runs on the consuming thread inside the pika instrumentation's
CONSUMER span, so anything it does belongs to the producer's trace. It returns
what to do with the message; the loop does it, because acks must go out on the
channel that delivered the message.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from .connection import CONNECTION_ERRORS, IDLE_TURN_S, connect, wake
from .tracing import inject_headers

log = logging.getLogger(__name__)

ATTEMPTS_HEADER = "x-attempts"


class DeliveryOutcome(enum.Enum):
    ACK = "ack"
    # Put the message at the back of its queue with its attempt count raised.
    RETRY = "retry"
    # basic.reject without requeue: the queue's dead-letter exchange takes it.
    DEAD_LETTER = "dead-letter"


@dataclass
class Delivery:
    queue: str
    body: bytes
    headers: dict[str, Any]
    message_id: str
    redelivered: bool
    routing_key: str

    @property
    def attempts(self) -> int:
        """Return how many times this message was tried before (0 on the first try)."""
        return int(self.headers.get(ATTEMPTS_HEADER, 0))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ConsumerStats:
    delivered: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    # The basic.qos in force on the live subscription (0 before the first one).
    prefetch: int = 0
    events: list[str] = field(default_factory=list)


Handler = Callable[[Delivery], DeliveryOutcome]
Declare = Callable[[BlockingChannel], None]


class ConsumerLoop:
    """Consume one queue until ``stop`` is set; call ``run`` on a dedicated thread."""

    def __init__(
        self,
        amqp_url: str,
        queue: str,
        handler: Handler,
        *,
        prefetch: Callable[[], int] | int = 10,
        declare: Declare | None = None,
        stop: threading.Event | None = None,
        name: str = "consumer",
        on_delivery: Callable[[str, int], None] | None = None,
    ) -> None:
        self.queue = queue
        self._url = amqp_url
        self._handler = handler
        self._prefetch = prefetch if callable(prefetch) else (lambda: prefetch)
        self._declare = declare
        self.stop = stop or threading.Event()
        self._name = name
        # Called with (event, change in unacked count) for live gauges.
        self._on_delivery = on_delivery or (lambda event, delta: None)
        self.stats = ConsumerStats()
        self.subscribed = threading.Event()
        self._ack_upto: int | None = None
        self._acks_pending = 0
        self._connection: pika.BlockingConnection | None = None  # while connected

    def wake(self) -> None:
        """End the consuming thread's idle wait now (after a stop or a new prefetch)."""
        wake(self._connection)

    def run(self) -> None:
        """Consume until stopped, reconnecting with backoff whenever the broker goes away."""
        delay = 0.2
        while not self.stop.is_set():
            try:
                self._consume_until_stopped()
                delay = 0.2
            except CONNECTION_ERRORS as error:
                self.subscribed.clear()
                if self.stop.is_set():
                    return
                self.stats.reconnects += 1
                self.stats.events = [*self.stats.events[-19:], f"lost the broker: {error!r}"]
                log.warning("consumer of %s lost the broker (%r); reconnecting", self.queue, error)
                self.stop.wait(delay)
                delay = min(delay * 2, 2.0)

    def _consume_until_stopped(self) -> None:
        connection = connect(self._url, name=self._name, deadline_s=3600, stop=self.stop)
        # Delivery tags belong to a channel: acks pending on a lost one are void.
        self._ack_upto, self._acks_pending = None, 0
        try:
            channel = connection.channel()
            # Confirms on this channel make a retry republish safe before the ack.
            channel.confirm_delivery()
            if self._declare is not None:
                self._declare(channel)
            prefetch = self._prefetch()
            channel.basic_qos(prefetch_count=prefetch)
            tag = channel.basic_consume(self.queue, self._on_message)
            self.stats.prefetch = prefetch
            self.subscribed.set()
            self._connection = connection
            while not self.stop.is_set():
                connection.process_data_events(time_limit=IDLE_TURN_S)
                self._flush_acks(channel)
                wanted = self._prefetch()
                if wanted != prefetch:
                    # basic.qos only applies to consumers started after it: resubscribe.
                    channel.basic_cancel(tag)
                    channel.basic_qos(prefetch_count=wanted)
                    prefetch = wanted
                    tag = channel.basic_consume(self.queue, self._on_message)
                    self.stats.prefetch = prefetch
        finally:
            self._connection = None
            self.subscribed.clear()
            if connection.is_open:
                try:
                    connection.close()
                except CONNECTION_ERRORS:
                    pass

    def _on_message(self, channel: BlockingChannel, method, properties, body: bytes) -> None:
        self.stats.delivered += 1
        self._on_delivery("delivered", 1)
        delivery = Delivery(
            queue=self.queue,
            body=body,
            headers=dict(properties.headers or {}),
            message_id=properties.message_id or "",
            redelivered=bool(method.redelivered),
            routing_key=method.routing_key,
        )
        try:
            outcome = self._handler(delivery)
        except Exception as error:
            # A handler that raises instead of choosing an outcome gets no retries: an
            # unbounded retry of a message that breaks the handler would loop for ever.
            log.warning("handler failed on %s: %r", delivery.message_id, error, exc_info=True)
            outcome = DeliveryOutcome.DEAD_LETTER
        if outcome is DeliveryOutcome.RETRY:
            self._republish(channel, delivery, properties)
            self.stats.retried += 1
        if outcome is DeliveryOutcome.DEAD_LETTER:
            channel.basic_reject(method.delivery_tag, requeue=False)
            self.stats.dead_lettered += 1
            self._on_delivery("dead_lettered", -1)
            return
        # The ack waits for the end of this batch of deliveries (see _flush_acks).
        self._ack_upto = method.delivery_tag
        self._acks_pending += 1

    def _flush_acks(self, channel: BlockingChannel) -> None:
        """Ack every handled delivery of the batch at once (basic.ack with multiple)."""
        # One network write per batch instead of one per message. A crash before this
        # line redelivers the whole unacked batch: at-least-once, absorbed by dedup.
        if self._ack_upto is None:
            return
        channel.basic_ack(self._ack_upto, multiple=True)
        self.stats.acked += self._acks_pending
        self._on_delivery("acked", -self._acks_pending)
        self._ack_upto, self._acks_pending = None, 0

    def _republish(self, channel: BlockingChannel, delivery: Delivery, properties) -> None:
        headers = inject_headers({**delivery.headers, ATTEMPTS_HEADER: delivery.attempts + 1})
        copy = pika.BasicProperties(
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=delivery.message_id,
            headers=headers,
        )
        # Publish (confirmed) before acking the original: a crash in between repeats
        # the message rather than losing it.
        channel.basic_publish("", self.queue, delivery.body, copy)
        self._on_delivery("retried", 0)


def start_thread(loop: ConsumerLoop) -> threading.Thread:
    """Start a consumer loop on a daemon thread and return the thread."""
    thread = threading.Thread(target=loop.run, name=f"consume-{loop.queue}", daemon=True)
    thread.start()
    return thread
