"""What a consumer does with an order: the simulated work, and where it can go wrong."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from sandbox_services.labs.async_messaging import config
from sandbox_services.runtime.spec import Faults

from .interface import HandleResult, PoisonMessage
from .store import ConsumerStore

tracer = trace.get_tracer(__name__)


class ConsumerBackend:
    """Handle orders for one consumer (email, audit or analytics)."""

    def __init__(self, *, name: str, replica: int, store: ConsumerStore, faults: Faults) -> None:
        self.name = name
        self.replica = replica
        self.store = store
        self._faults = faults

    async def handle(self, order: dict, *, message_id: str) -> HandleResult:
        """Do the work once for this delivery; raise PoisonMessage if it can never succeed."""
        # The learner's injected delay and error rate ("slow", "error") act here,
        # for orders arriving by HTTP (sync) and by the queue (async) alike.
        await self._faults.apply()
        if self.name == "email" and order.get("customer_email") == config.POISON_EMAIL:
            # Retrying cannot help: the address will be just as undeliverable next time.
            raise PoisonMessage(f"cannot deliver to {order['customer_email']}")
        settings = self.store.settings()
        work_ms = settings.work_ms if settings.work_ms is not None else config.WORK_MS[self.name]
        with tracer.start_as_current_span(f"{self.name}: handle order"):
            if work_ms:
                await asyncio.sleep(work_ms / 1000)
            effect = self.store.record_effect(
                message_id, self.replica, idempotent=settings.idempotent
            )
        if not effect:
            # Teaching point: the duplicate was recognised by its id and skipped.
            trace.get_current_span().add_event("duplicate skipped", {"message_id": message_id})
        return HandleResult(message_id, effect)

    async def stats(self) -> dict:
        return self.store.stats()
