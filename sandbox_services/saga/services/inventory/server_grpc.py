"""Serve the inventory service: reserve and release stock, by gRPC command or by event."""

from __future__ import annotations

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2_grpc
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.saga.services.inventory.backend import InventoryBackend
from sandbox_services.saga.services.participant.server_grpc import StepRunner, serve_participant


class InventoryServicer(saga_pb2_grpc.InventoryServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ReserveStock(self, request, context):
        return await self.runner.run("reserve", request, context)

    async def ReleaseStock(self, request, context):
        return await self.runner.run("release", request, context)


async def main(ctx: ServiceContext) -> None:
    """Serve the inventory service until cancelled (a ServiceSpec main)."""
    await serve_participant(
        ctx, InventoryBackend, InventoryServicer, saga_pb2_grpc.add_InventoryServicer_to_server
    )
