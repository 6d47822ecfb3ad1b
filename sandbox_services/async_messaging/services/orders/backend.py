"""What the order service does with an order, in each of the two styles."""

from __future__ import annotations

from sandbox_services.async_messaging import knobs
from sandbox_services.broker.publisher import AsyncPublisher, PublishFailed, PublishRefused
from sandbox_services.async_messaging.services.consumers.client import (
    ConsumerClient,
    ConsumerUnavailable,
)

from .interface import Mode, Order, OrderReceipt, OrderRefused


class OrderBackend:
    """Place orders by request/reply to each consumer, or by one event to the broker."""

    def __init__(
        self, *, publisher: AsyncPublisher, prefix: str, consumers: dict[str, ConsumerClient]
    ) -> None:
        self._publisher = publisher
        self._exchange = prefix + knobs.EXCHANGE
        self._consumers = consumers

    async def place_order(self, order: Order, *, mode: Mode) -> OrderReceipt:
        """Accept an order in the given mode or raise OrderRefused naming the cause."""
        if mode == "sync":
            return await self._place_sync(order)
        return await self._place_async(order)

    async def _place_sync(self, order: Order) -> OrderReceipt:
        # Notice: the caller waits for the slowest of three calls in a row, and any one
        # of them being down fails the whole order.
        for name, client in self._consumers.items():
            try:
                await client.handle(order.as_dict(), message_id=order.order_id)
            except ConsumerUnavailable as error:
                raise OrderRefused(f"{name} unavailable: {error}", service=name) from error
        return OrderReceipt(order.order_id, "sync", list(self._consumers))

    async def _place_async(self, order: Order) -> OrderReceipt:
        # Notice: one confirmed publish, whoever listens and whatever state they are in.
        try:
            await self._publisher.publish(
                self._exchange, knobs.ROUTING_KEY, order.as_dict(), message_id=order.order_id
            )
        except (PublishFailed, PublishRefused) as error:
            raise OrderRefused(f"broker: {error}", service="rabbitmq") from error
        return OrderReceipt(order.order_id, "async", ["rabbitmq"])
