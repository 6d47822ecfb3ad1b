"""What a consumer does with an order: the simulated work, and where it can go wrong."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from opentelemetry import trace

from sandbox_services.async_messaging import knobs
from sandbox_services.runtime.spec import Faults, InjectedFault

from ..mail_provider.client import MailProviderClient
from ..mail_provider.interface import SendRequest
from .interface import HandleResult, PoisonMessage
from .store import ConsumerStore

tracer = trace.get_tracer(__name__)


class ConsumerBackend:
    """Handle orders for one consumer (email, audit or analytics)."""

    def __init__(
        self,
        *,
        name: str,
        replica: int,
        store: ConsumerStore,
        faults: Faults,
        mail: MailProviderClient | None = None,
    ) -> None:
        self.name = name
        self.replica = replica
        self.store = store
        self._faults = faults
        # The outside mail provider, for email only (the external side effect experiment).
        self._mail = mail

    async def handle(self, order: dict, *, message_id: str) -> HandleResult:
        """Do the work for an order that came by HTTP (sync mode); raise PoisonMessage."""
        # The learner's injected delay and error rate ("slow", "error") act here...
        await self._faults.apply()
        self._refuse_poison(order)
        settings = self.store.settings()
        with tracer.start_as_current_span(f"{self.name}: handle order"):
            work_ms = self._work_ms(settings)
            if work_ms:
                await asyncio.sleep(work_ms / 1000)
            return self._record(message_id, settings.idempotent)

    def handle_delivery(
        self, order: dict, *, message_id: str, before_commit: Callable[[], None] | None = None
    ) -> HandleResult:
        """Do the work for an order that came from the queue, on the consuming thread.

        With an outside mail provider, ``before_commit`` runs between the provider's
        answer and the store's commit: where the at-least-once experiment's crash goes.
        """
        # ...and here, for orders arriving by the queue. Done on the consuming thread,
        # not the event loop: two thread hops per message cost more than the work.
        if self._faults.delay_s:
            time.sleep(self._faults.delay_s)
        if self._faults.error_rate and random.random() < self._faults.error_rate:
            raise InjectedFault("injected error")
        self._refuse_poison(order)
        settings = self.store.settings()
        with tracer.start_as_current_span(f"{self.name}: handle order"):
            work_ms = self._work_ms(settings)
            if work_ms:
                time.sleep(work_ms / 1000)
            if settings.provider and self._mail is not None:
                if settings.idempotent and self.store.has_handled(message_id):
                    # The consumer's own dedup: committed before, so no second call.
                    return self._record(message_id, idempotent=True)
                self._send_mail(order, message_id, keyed=settings.provider == "keyed")
                if before_commit is not None:
                    before_commit()
            return self._record(message_id, settings.idempotent)

    def _send_mail(self, order: dict, message_id: str, *, keyed: bool) -> None:
        # Notice: this call cannot join the store's transaction below. A crash after
        # it and before the commit leaves an email sent and no record of it here.
        key = message_id if keyed else None
        self._mail.send(SendRequest(order.get("customer_email", ""), message_id, key))

    def _refuse_poison(self, order: dict) -> None:
        if self.name == "email" and order.get("customer_email") == knobs.POISON_EMAIL:
            # Retrying cannot help: the address will be just as undeliverable next time.
            raise PoisonMessage(f"cannot deliver to {order['customer_email']}")

    def _work_ms(self, settings) -> float:
        return settings.work_ms if settings.work_ms is not None else knobs.WORK_MS[self.name]

    def _record(self, message_id: str, idempotent: bool) -> HandleResult:
        effect = self.store.record_effect(message_id, self.replica, idempotent=idempotent)
        if not effect:
            # Teaching point: the duplicate was recognised by its id and skipped.
            trace.get_current_span().add_event("duplicate skipped", {"message_id": message_id})
        return HandleResult(message_id, effect)

    async def stats(self) -> dict:
        return self.store.stats()
