"""Serve the orders service: its gRPC commands, its event consumer and its outbox relay.

``PlaceOrder`` starts a choreographed saga; the coordinator calls the others.
"""

from __future__ import annotations

import asyncio

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.saga.services.orders.backend import OrdersBackend
from sandbox_services.saga.services.participant.server_grpc import StepRunner, serve_participant


class OrdersServicer(saga_pb2_grpc.OrdersServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def PlaceOrder(self, request, context):
        # Choreography starts here: the order row and its OrderCreated event
        # commit together; from then on only events move the saga.
        return await self.runner.run("create", request, context, emit=True)

    async def CreateOrder(self, request, context):
        return await self.runner.run("create", request, context)

    async def ApproveOrder(self, request, context):
        return await self.runner.run("approve", request, context)

    async def RejectOrder(self, request, context):
        return await self.runner.run("reject", request, context)

    async def GetOrders(self, request, context):
        backend = self.runner.backend
        assert isinstance(backend, OrdersBackend)
        statuses = await asyncio.to_thread(backend.statuses, list(request.saga_ids))
        return saga_pb2.OrderStatuses(
            orders=[
                saga_pb2.OrderStatus(saga_id=saga_id, status=status)
                for saga_id, status in statuses.items()
            ]
        )


async def main(ctx: ServiceContext) -> None:
    """Serve the orders service until cancelled (a ServiceSpec main)."""
    await serve_participant(
        ctx, OrdersBackend, OrdersServicer, saga_pb2_grpc.add_OrdersServicer_to_server
    )
