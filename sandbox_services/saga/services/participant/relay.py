"""The outbox relay: publish committed outbox rows to RabbitMQ, then mark them published.

It runs on its own thread with its own broker connection and its own SQLite
connection. Publisher confirms make "published" mean "the broker has it".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pika
from opentelemetry import context, propagate, trace

from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.broker.connection import CONNECTION_ERRORS, connect

from sandbox_services.saga.services.participant import outbox
from sandbox_services.saga.store import connect as connect_store
from sandbox_services.saga.store import transaction
from sandbox_services.saga.topology import declare_exchange, exchange_name

log = logging.getLogger(__name__)
# The idle relay's longest wait between looks at its outbox.
# The relay's connection has no AMQP heartbeat (a lost broker shows at the next
# publish, whose rows stay pending until confirmed), so an idle relay need not
# turn to answer one: it sleeps until a commit wakes it, polling this rarely.
IDLE_POLL_MAX_S = 30.0
tracer = trace.get_tracer("sandbox_services.saga.services.participant.relay")


class Relay(threading.Thread):
    """Publish one service's outbox until told to stop."""

    def __init__(
        self,
        *,
        service: str,
        db_path: Path,
        amqp_url: str,
        prefix: str,
        config: SagaConfig,
        stop: threading.Event,
        wake: threading.Event,
    ) -> None:
        super().__init__(name=f"{service}-relay", daemon=True)
        self.service = service
        self.db_path = db_path
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.config = config
        self.stop = stop
        self.wake = wake
        self.published = 0

    def run(self) -> None:
        db = connect_store(self.db_path)
        while not self.stop.is_set():
            try:
                self._publish_until_stopped(db)
            except CONNECTION_ERRORS as error:
                log.warning("%s relay lost the broker (%s); reconnecting", self.service, error)
                self.stop.wait(0.5)
        db.close()

    def _publish_until_stopped(self, db: sqlite3.Connection) -> None:
        # Connected when there is something to publish, not at start: a sandbox
        # that never runs a saga opens no relay connections (one per participant,
        # a quarter of a saga sandbox's start).
        connection = channel = None
        try:
            idle_wait = self.config.relay_poll_s
            while not self.stop.is_set():
                # Clear before reading: a commit that lands after the read sets it
                # again, so no wake-up is lost between the read and the wait.
                self.wake.clear()
                rows = outbox.pending(db, self.config.relay_batch)
                if rows:
                    if connection is None:
                        connection = connect(
                            self.amqp_url,
                            name=f"{self.prefix}{self.service}-relay",
                            stop=self.stop,
                            heartbeat=0,
                        )
                        channel = connection.channel()
                        channel.confirm_delivery()
                        declare_exchange(channel, self.prefix)
                    exchange = exchange_name(self.prefix)
                    for row in rows:
                        self._publish(channel, exchange, row)
                    # Crash here and these rows go out again on restart: at-least-once.
                    with transaction(db):
                        outbox.mark_published(db, [row["id"] for row in rows])
                    self.published += len(rows)
                    idle_wait = self.config.relay_poll_s
                    continue
                # Every commit of this process wakes the relay; the poll is the fallback.
                # It slows while nothing happens (an idle sandbox costs nothing) and is
                # back to relay_poll_s as soon as something does.
                woken = self.wake.wait(idle_wait)
                idle_wait = (
                    self.config.relay_poll_s if woken else min(idle_wait * 2, IDLE_POLL_MAX_S)
                )
                if connection is not None:
                    connection.process_data_events(0)
        finally:
            if connection is not None and connection.is_open:
                connection.close()

    def _publish(
        self,
        channel: pika.adapters.blocking_connection.BlockingChannel,
        exchange: str,
        row: sqlite3.Row,
    ) -> None:
        # Continue the trace of the step that wrote the row, not a new one.
        parent = propagate.extract({"traceparent": row["traceparent"]})
        token = context.attach(parent)
        try:
            with tracer.start_as_current_span(f"relay {row['event']}") as span:
                span.set_attribute("saga.message_id", row["message_id"])
                headers: dict[str, str] = {}
                propagate.inject(headers)
                properties = pika.BasicProperties(
                    message_id=row["message_id"],
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    headers=headers,
                    type=row["event"],
                )
                copies = 2 if row["duplicate"] else 1
                for _ in range(copies):
                    channel.basic_publish(exchange, row["event"], row["body"].encode(), properties)
        finally:
            context.detach(token)
