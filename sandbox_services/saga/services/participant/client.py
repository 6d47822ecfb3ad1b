"""The coordinator's gRPC client of a participant, behind the ``Participant`` Protocol."""

from __future__ import annotations

import grpc

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc

from sandbox_services.saga.interface import Order, StepError, StepResult, StepTimeout
from sandbox_services.saga.wire import RPCS, order_to_proto, reply_from_proto

STUBS = {
    "orders": saga_pb2_grpc.OrdersStub,
    "payments": saga_pb2_grpc.PaymentsStub,
    "inventory": saga_pb2_grpc.InventoryStub,
    "shipping": saga_pb2_grpc.ShippingStub,
}


class ParticipantClient:
    """Send the coordinator's commands to one participant over gRPC."""

    def __init__(self, service: str, channel: grpc.aio.Channel, deadline_s: float) -> None:
        self.service = service
        self.stub = STUBS[service](channel)
        self.deadline_s = deadline_s

    async def execute(self, action: str, order: Order, *, attempt: int = 1) -> StepResult:
        """Send one command; a deadline or transport error becomes StepTimeout/StepError."""
        service, method = RPCS[action]
        if service != self.service:
            raise ValueError(f"{action} is not a {self.service} command")
        request = saga_pb2.StepCommand(order=order_to_proto(order), attempt=attempt)
        try:
            reply = await getattr(self.stub, method)(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                # We do not know whether the step applied: the reply may just be late.
                raise StepTimeout(f"{method}: no reply within {self.deadline_s:.2f}s") from error
            raise StepError(f"{method}: {error.code().name} {error.details()}") from error
        return reply_from_proto(reply)
