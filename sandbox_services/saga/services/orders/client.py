"""The orders service's gRPC client: start a choreographed saga, read order statuses."""

from __future__ import annotations

import grpc

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc
from sandbox_services.saga.interface import Order, StepResult
from sandbox_services.saga.wire import order_to_proto, reply_from_proto


class OrdersClient:
    """Start a choreographed saga and read order statuses."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = saga_pb2_grpc.OrdersStub(channel)

    async def place_order(self, order: Order, timeout_s: float = 10.0) -> StepResult:
        """Create the order; its OrderCreated event sets the choreography going."""
        request = saga_pb2.StepCommand(order=order_to_proto(order), attempt=1)
        return reply_from_proto(await self.stub.PlaceOrder(request, timeout=timeout_s))

    async def statuses(self, saga_ids: list[str], timeout_s: float = 10.0) -> dict[str, str]:
        """Return each saga's order status (pending, approved, rejected or unknown)."""
        reply = await self.stub.GetOrders(saga_pb2.OrderQuery(saga_ids=saga_ids), timeout=timeout_s)
        return {item.saga_id: item.status for item in reply.orders}
