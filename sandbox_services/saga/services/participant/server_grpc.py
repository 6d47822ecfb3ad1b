"""Serve a participant: gRPC commands (orchestration), its event consumer and relay (choreography).

Each ``*_main`` is a ServiceSpec entry point: ``async def main(ctx)`` that
serves until cancelled. The servicers parse the request, call the backend in a
worker thread (SQLite and the simulated work block), and shape the reply.
"""

from __future__ import annotations

import asyncio
import threading

import grpc

from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc
from sandbox_services.runtime.serve import grpc_server

from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.interface import StepError, StepTimeout
from sandbox_services.saga.services.participant.participants import OrdersBackend, open_backend
from sandbox_services.saga.services.participant.relay import Relay
from sandbox_services.saga.services.participant.server_amqp import ChoreographyConsumer, faults_hook
from sandbox_services.saga.store import database_path
from sandbox_services.saga.wire import order_from_proto, reply_to_proto

# Extra time the participant waits past the caller's deadline before giving up,
# so the coordinator sees DEADLINE_EXCEEDED first and must decide without an answer.
BUDGET_MARGIN_S = 0.05


class StepRunner:
    """Run one command against the backend and map its outcome to a gRPC reply or status."""

    def __init__(self, backend: ParticipantBackend, relay_wake: threading.Event) -> None:
        self.backend = backend
        self.relay_wake = relay_wake

    async def run(
        self,
        action: str,
        request: saga_pb2.StepCommand,
        context: grpc.aio.ServicerContext,
        *,
        emit: bool = False,
    ) -> saga_pb2.StepReply:
        order = order_from_proto(request.order)
        remaining = context.time_remaining()
        budget = None if remaining is None else remaining + BUDGET_MARGIN_S
        try:
            result = await asyncio.to_thread(
                self.backend.execute, action, order, emit=emit, budget_s=budget
            )
        except StepTimeout as error:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
        except StepError as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        if emit:
            self.relay_wake.set()
        return reply_to_proto(result)


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


class PaymentsServicer(saga_pb2_grpc.PaymentsServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ChargePayment(self, request, context):
        return await self.runner.run("charge", request, context)

    async def RefundPayment(self, request, context):
        return await self.runner.run("refund", request, context)


class InventoryServicer(saga_pb2_grpc.InventoryServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ReserveStock(self, request, context):
        return await self.runner.run("reserve", request, context)

    async def ReleaseStock(self, request, context):
        return await self.runner.run("release", request, context)


class ShippingServicer(saga_pb2_grpc.ShippingServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ScheduleShipping(self, request, context):
        return await self.runner.run("schedule", request, context)

    async def CancelShipping(self, request, context):
        return await self.runner.run("cancel", request, context)


SERVICERS = {
    "orders": (OrdersServicer, saga_pb2_grpc.add_OrdersServicer_to_server),
    "payments": (PaymentsServicer, saga_pb2_grpc.add_PaymentsServicer_to_server),
    "inventory": (InventoryServicer, saga_pb2_grpc.add_InventoryServicer_to_server),
    "shipping": (ShippingServicer, saga_pb2_grpc.add_ShippingServicer_to_server),
}


async def serve_participant(ctx, service: str) -> None:
    """Serve one participant until cancelled."""
    config = SagaConfig.from_settings(ctx.settings)
    backend = open_backend(service, ctx.workdir, config)
    stop, relay_wake = threading.Event(), threading.Event()
    # The runtime's server: bound to 127.0.0.1:ctx.port, health service, learner's faults.
    server = grpc_server(ctx)
    servicer_class, add = SERVICERS[service]
    add(servicer_class(StepRunner(backend, relay_wake)), server)
    relay = Relay(
        service=service,
        db_path=database_path(ctx.workdir, service),
        amqp_url=ctx.amqp_url,
        prefix=ctx.prefix,
        config=config,
        stop=stop,
        wake=relay_wake,
    )
    consumer = ChoreographyConsumer(
        backend=backend,
        amqp_url=ctx.amqp_url,
        prefix=ctx.prefix,
        config=config,
        stop=stop,
        relay_wake=relay_wake,
        before_attempt=faults_hook(ctx.faults, asyncio.get_running_loop()),
    )
    relay.start()
    consumer.start()
    # Ready only once the queue is bound: an event published before that would be lost.
    await asyncio.to_thread(consumer.ready.wait, 30)
    await server.start()
    try:
        await server.wait_for_termination()
    finally:
        stop.set()
        relay_wake.set()
        await server.stop(0.5)
        await asyncio.to_thread(consumer.join, 5)
        await asyncio.to_thread(relay.join, 5)
        backend.close()


async def orders_main(ctx) -> None:
    """Serve the orders service."""
    await serve_participant(ctx, "orders")


async def payments_main(ctx) -> None:
    """Serve the payments service."""
    await serve_participant(ctx, "payments")


async def inventory_main(ctx) -> None:
    """Serve the inventory service."""
    await serve_participant(ctx, "inventory")


async def shipping_main(ctx) -> None:
    """Serve the shipping service."""
    await serve_participant(ctx, "shipping")
