"""Serve the payments service: charge and refund, by gRPC command or by event."""

from __future__ import annotations

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2_grpc
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.saga.services.participant.server_grpc import StepRunner, serve_participant
from sandbox_services.saga.services.payments.backend import PaymentsBackend


class PaymentsServicer(saga_pb2_grpc.PaymentsServicer):
    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    async def ChargePayment(self, request, context):
        return await self.runner.run("charge", request, context)

    async def RefundPayment(self, request, context):
        return await self.runner.run("refund", request, context)


async def main(ctx: ServiceContext) -> None:
    """Serve the payments service until cancelled (a ServiceSpec main)."""
    await serve_participant(
        ctx, PaymentsBackend, PaymentsServicer, saga_pb2_grpc.add_PaymentsServicer_to_server
    )
