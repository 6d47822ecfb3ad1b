"""A participant's choreography consumer: react to events from its queue, ack after commit.

The ack comes only after the local transaction committed, so a crash before
it means the broker delivers the message again; the inbox table turns that
redelivery into a no-op. That pair, ack-after-commit plus an idempotent
handler, is what "exactly-once effect" means over an at-least-once broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable

import pika
from opentelemetry import context, propagate, trace

from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.broker.connection import CONNECTION_ERRORS, IDLE_TURN_S, connect
from sandbox_services.broker.connection import wake as wake_connection

from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.interface import FORWARD_ACTIONS, Order, StepError
from sandbox_services.saga.services.participant.reactions import handle_event
from sandbox_services.saga.topology import declare_queue

log = logging.getLogger(__name__)
CRASH_EXIT_CODE = 137


class ChoreographyConsumer(threading.Thread):
    """Consume one participant's queue until told to stop."""

    def __init__(
        self,
        *,
        backend: ParticipantBackend,
        amqp_url: str,
        prefix: str,
        config: SagaConfig,
        stop: threading.Event,
        relay_wake: threading.Event,
        before_attempt: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"{backend.service}-consumer", daemon=True)
        self.backend = backend
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.config = config
        self.stop = stop
        self.relay_wake = relay_wake
        self.before_attempt = before_attempt
        self.ready = threading.Event()
        self._connection: pika.BlockingConnection | None = None  # while consuming

    def wake(self) -> None:
        """End the idle wait now, so a stop is seen at once (call after setting ``stop``)."""
        wake_connection(self._connection)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._consume_until_stopped()
            except CONNECTION_ERRORS as error:
                log.warning(
                    "%s consumer lost the broker (%s); reconnecting", self.backend.service, error
                )
                self.stop.wait(0.5)

    def _consume_until_stopped(self) -> None:
        connection = connect(
            self.amqp_url, name=f"{self.prefix}{self.backend.service}-consumer", stop=self.stop
        )
        try:
            channel = connection.channel()
            queue = declare_queue(
                channel, self.prefix, self.backend.service, self.config.queue_expires_ms
            )
            channel.basic_qos(prefetch_count=self.config.consumer_prefetch)
            channel.basic_consume(queue, self._on_message)
            self.ready.set()
            self._connection = connection
            while not self.stop.is_set():
                # Returns as soon as deliveries arrive or ``wake`` is called; the limit
                # spaces only the idle turns (pika answers heartbeats inside the wait).
                connection.process_data_events(time_limit=IDLE_TURN_S)
        finally:
            self._connection = None
            if connection.is_open:
                connection.close()

    def _on_message(self, channel, method, properties: pika.BasicProperties, body: bytes) -> None:
        token = None
        if not trace.get_current_span().get_span_context().is_valid:
            # pika not instrumented (tracing off): pick the trace up from the headers ourselves.
            token = context.attach(propagate.extract(properties.headers or {}))
        try:
            event = json.loads(body)
            outcome = handle_event(
                self.backend,
                event,
                config=self.config,
                before_attempt=self.before_attempt,
                should_stop=self.stop.is_set,
            )
        except StepError:
            return  # stopping mid-retry: no ack, so the broker redelivers it to the next run
        except (ValueError, KeyError, TypeError) as error:
            # Not one of our events: log it and drop it rather than loop on it for ever.
            log.error("%s dropped a malformed message: %s", self.backend.service, error)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return
        except Exception:
            # Anything else (a locked file, a bug) is worth another try, a little later.
            log.exception("%s failed to handle a message; requeueing it", self.backend.service)
            self.stop.wait(0.5)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        finally:
            if token is not None:
                context.detach(token)
        if outcome is not None:
            action, result = outcome
            order = Order.from_dict(event["order"])
            if (
                order.plan.crash_after_commit == self.backend.service
                and result.status == "done"
                and action in FORWARD_ACTIONS
            ):
                # Experiment 3: die after the commit, before the relay publishes and
                # before the ack. On restart the relay publishes the outbox row and the
                # broker redelivers this message, which the inbox then ignores.
                os._exit(CRASH_EXIT_CODE)
        self.relay_wake.set()
        channel.basic_ack(method.delivery_tag)


def faults_hook(faults, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Return a hook that applies the learner's live faults (delay, error rate) to one message."""

    def apply() -> None:
        # Only hop to the event loop when the learner has switched a fault on.
        if faults.delay_s > 0 or faults.error_rate > 0:
            asyncio.run_coroutine_threadsafe(faults.apply(), loop).result()

    return apply
