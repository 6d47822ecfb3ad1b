"""The coordinator's gRPC client: start an orchestrated saga, read saga states."""

from __future__ import annotations

import grpc

from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc
from sandbox_services.saga.interface import Order
from sandbox_services.saga.wire import order_to_proto


class CoordinatorClient:
    """Start orchestrated sagas and read their states."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = saga_pb2_grpc.CoordinatorStub(channel)

    async def start_saga(self, order: Order, timeout_s: float = 10.0) -> str:
        """Ask the coordinator to run a saga; return its state once it is logged."""
        reply = await self.stub.StartSaga(order_to_proto(order), timeout=timeout_s)
        return reply.state

    async def states(
        self, saga_ids: list[str], timeout_s: float = 10.0
    ) -> dict[str, saga_pb2.SagaState]:
        """Return each saga's coordinator state (state, finished, paused)."""
        reply = await self.stub.GetSagas(saga_pb2.SagaQuery(saga_ids=saga_ids), timeout=timeout_s)
        return {item.saga_id: item for item in reply.sagas}
