"""Serve the shipping service: schedule and cancel shipments, by gRPC command or by event."""

from __future__ import annotations

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2_grpc
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.saga.services.participant.server_grpc import StepRunner, serve_participant
from sandbox_services.saga.services.shipping.backend import ShippingBackend


class ShippingServicer(saga_pb2_grpc.ShippingServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ScheduleShipping(self, request, context):
        return await self.runner.run("schedule", request, context)

    async def CancelShipping(self, request, context):
        return await self.runner.run("cancel", request, context)


async def main(ctx: ServiceContext) -> None:
    """Serve the shipping service until cancelled (a ServiceSpec main)."""
    await serve_participant(
        ctx, ShippingBackend, ShippingServicer, saga_pb2_grpc.add_ShippingServicer_to_server
    )
