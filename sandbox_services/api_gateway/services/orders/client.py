"""Call the orders service over gRPC (the BFF's client, and the experiments' through the gateway)."""

from __future__ import annotations

import grpc

from sandbox_services.protos_gen.labapi.gateway.v1 import orders_pb2, orders_pb2_grpc


def order_dict(order: orders_pb2.Order) -> dict:
    return {
        "id": order.id,
        "customer": order.customer,
        "status": order.status,
        "total_cents": order.total_cents,
        "skus": list(order.skus),
        "version": order.version,
        "seen_user": order.seen_user,
    }


class OrdersGrpcClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = orders_pb2_grpc.OrdersStub(channel)

    async def get_order(
        self, order_id: int, *, metadata: tuple = (), timeout_s: float | None = None
    ) -> dict:
        reply = await self._stub.GetOrder(
            orders_pb2.GetOrderRequest(id=order_id), metadata=metadata, timeout=timeout_s
        )
        return order_dict(reply)

    async def list_orders(
        self, customer: str, limit: int = 3, *, metadata: tuple = (), timeout_s: float | None = None
    ) -> dict:
        reply = await self._stub.ListOrders(
            orders_pb2.ListOrdersRequest(customer=customer, limit=limit),
            metadata=metadata,
            timeout=timeout_s,
        )
        return {"orders": [order_dict(order) for order in reply.orders], "version": reply.version}
