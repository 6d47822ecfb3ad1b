"""Serve orders over gRPC (labapi.gateway.v1.Orders). One code, two deployments: orders and orders-v2.

The deployment's version comes from its service name, so the routing
experiment can tell which one the gateway's canary rule chose. The caller's
identity arrives as ``x-user-id`` metadata (an HTTP/2 header the gateway
wrote from the verified token).
"""

from __future__ import annotations

import asyncio
import zlib

import grpc

from sandbox_services.protos_gen.labapi.gateway.v1 import orders_pb2, orders_pb2_grpc
from sandbox_services.runtime.serve import grpc_server, serve_grpc
from sandbox_services.runtime.spec import ServiceContext

STATUSES = ("placed", "paid", "shipped", "delivered")


class OrderLookupServicer(orders_pb2_grpc.OrdersServicer):
    def __init__(self, version: str, work_ms: float) -> None:
        self.version = version
        self.work_ms = work_ms
        self.calls = 0

    def _order(self, order_id: int, user: str) -> orders_pb2.Order:
        seed = zlib.crc32(str(order_id).encode())
        return orders_pb2.Order(
            id=order_id,
            customer=user or f"customer-{seed % 7}",
            status=STATUSES[seed % len(STATUSES)],
            total_cents=1000 + seed % 9000,
            skus=[f"sku-{1 + seed % 10:03d}", f"sku-{1 + (seed >> 4) % 10:03d}"],
            version=self.version,
            seen_user=user,
        )

    @staticmethod
    def _user(context: grpc.aio.ServicerContext) -> str:
        return next(
            (value for key, value in context.invocation_metadata() if key == "x-user-id"), ""
        )

    async def GetOrder(self, request, context):
        self.calls += 1
        await asyncio.sleep(self.work_ms / 1000)
        if request.id <= 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "id must be positive")
        return self._order(request.id, self._user(context))

    async def ListOrders(self, request, context):
        self.calls += 1
        await asyncio.sleep(self.work_ms / 1000)
        user = self._user(context) or request.customer
        limit = max(1, min(request.limit or 3, 20))
        return orders_pb2.OrderList(
            orders=[self._order(1000 + n, user) for n in range(limit)], version=self.version
        )


async def main(ctx: ServiceContext) -> None:
    version = "v2" if ctx.name.endswith("-v2") else "v1"
    server = grpc_server(ctx)
    orders_pb2_grpc.add_OrdersServicer_to_server(
        OrderLookupServicer(version, float(ctx.settings.get("orders_work_ms", 0))), server
    )
    await serve_grpc(ctx, server)
