"""The consumer's queue side: deliveries from RabbitMQ, acked only after the work is done."""

from __future__ import annotations

import logging
import os
import threading
from functools import partial

from sandbox_services.async_messaging import knobs
from sandbox_services.broker.consumer import ConsumerLoop, Delivery, DeliveryOutcome, start_thread
from sandbox_services.broker.gauges import GaugeReporter
from sandbox_services.runtime.spec import ServiceContext

from .backend import ConsumerBackend
from .interface import PoisonMessage

log = logging.getLogger(__name__)

# Exit status of a simulated crash between the work and the ack.
CRASH_EXIT_CODE = 70


class QueueConsumer:
    """Feed the queue's deliveries to the backend and turn its outcome into ack, retry or reject."""

    def __init__(
        self, ctx: ServiceContext, backend: ConsumerBackend, gauges: GaugeReporter
    ) -> None:
        self._ctx = ctx
        self._backend = backend
        self._gauges = gauges
        self.stop = threading.Event()
        self.loop = ConsumerLoop(
            ctx.amqp_url,
            ctx.prefix + backend.name,
            self.on_delivery,
            prefetch=lambda: backend.store.settings().prefetch,
            declare=partial(knobs.declare_consumer_queue, prefix=ctx.prefix, consumer=backend.name),
            stop=self.stop,
            name=f"{ctx.prefix}{backend.name}-{ctx.replica}",
            on_delivery=self._count,
        )

    def _count(self, event: str, delta: int) -> None:
        name = self._backend.name
        self._gauges.inflight(name, delta)
        if event == "delivered":
            self._gauges.add(name, "delivered")
        elif event == "retried":
            self._gauges.add(name, "published")
        elif event == "dead_lettered":
            self._gauges.add(name + knobs.DEAD_SUFFIX, "published")

    def on_delivery(self, delivery: Delivery) -> DeliveryOutcome:
        """Handle one delivery (on the consuming thread) and say whether to ack it."""
        try:
            order = delivery.json()
            if not isinstance(order, dict):
                raise PoisonMessage("the message is not a JSON object")
            first_time = not delivery.redelivered and delivery.attempts == 0
            crash_due = self._backend.name in order.get("crash_in", ()) and first_time
            # Runs inside the pika instrumentation's CONSUMER span, current on this thread.
            # With an outside mail provider the crash comes between its answer and the
            # commit (before_commit); otherwise after the commit, before the ack (below).
            self._backend.handle_delivery(
                order,
                message_id=delivery.message_id,
                before_commit=self._crash if crash_due else None,
            )
        except Exception as error:
            # Broad on purpose: whatever the work raised (an injected fault, a poison
            # message, a bug) is what retries and the dead-letter queue are there for.
            # The retries are counted in the store; the last failure is logged in full.
            if delivery.attempts + 1 >= knobs.MAX_ATTEMPTS:
                log.warning(
                    "dead-lettering %s after %d attempts: %s",
                    delivery.message_id,
                    delivery.attempts + 1,
                    error,
                    exc_info=True,
                )
                self._backend.store.bump("dead_lettered")
                return DeliveryOutcome.DEAD_LETTER
            self._backend.store.bump("retried")
            return DeliveryOutcome.RETRY
        if delivery.redelivered:
            # Counted so a run can show how many messages each crash brought back.
            self._backend.store.bump("redelivered")
        if crash_due:
            # The at-least-once experiment: the work is done and recorded, the ack is
            # not sent. The broker will deliver this message again to whoever is next.
            self._crash()
        return DeliveryOutcome.ACK

    def _crash(self) -> None:
        self._backend.store.bump("crashes")
        os._exit(CRASH_EXIT_CODE)

    def start(self) -> threading.Thread:
        return start_thread(self.loop)
