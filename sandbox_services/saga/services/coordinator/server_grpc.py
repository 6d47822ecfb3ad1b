"""Serve the saga coordinator over gRPC; on start, resume every saga its log left unfinished."""

from __future__ import annotations

import asyncio

import grpc

from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2, saga_pb2_grpc
from sandbox_services.runtime.serve import grpc_server
from sandbox_services.runtime.spec import ServiceContext

from sandbox_services.saga.services.participant.client import ParticipantClient
from sandbox_services.saga.services.coordinator.backend import SagaCoordinator
from sandbox_services.saga.interface import FINAL_STATES, SERVICES
from sandbox_services.saga.services.coordinator.saga_log import SagaLog
from sandbox_services.saga.store import database_path
from sandbox_services.saga.wire import order_from_proto


class CoordinatorServicer(saga_pb2_grpc.CoordinatorServicer):
    def __init__(self, coordinator: SagaCoordinator) -> None:
        self.coordinator = coordinator

    async def StartSaga(self, request, context):
        record = await self.coordinator.start(order_from_proto(request))
        return saga_pb2.SagaState(
            saga_id=record.saga_id,
            state=record.state,
            finished=record.finished,
            paused=record.paused,
        )

    async def GetSagas(self, request, context):
        states = self.coordinator.log.states(list(request.saga_ids))
        return saga_pb2.SagaStates(
            sagas=[
                saga_pb2.SagaState(
                    saga_id=saga_id, state=state, finished=state in FINAL_STATES, paused=paused
                )
                for saga_id, (state, paused) in states.items()
            ]
        )


async def main(ctx: ServiceContext) -> None:
    """Serve the coordinator until cancelled (a ServiceSpec main)."""
    config = SagaConfig.from_settings(ctx.settings)
    saga_log = SagaLog(database_path(ctx.workdir, "coordinator"))
    channels = {service: grpc.aio.insecure_channel(ctx.address(service)) for service in SERVICES}
    participants = {
        service: ParticipantClient(service, channel, config.coordinator_step_deadline_s)
        for service, channel in channels.items()
    }
    coordinator = SagaCoordinator(saga_log, participants, config)
    server = grpc_server(ctx)
    saga_pb2_grpc.add_CoordinatorServicer_to_server(CoordinatorServicer(coordinator), server)
    await server.start()
    ctx.ready()
    # The point of the durable log: whatever was in flight when we died goes on now.
    coordinator.resume_all()
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(0.5)
        await coordinator.close()
        await asyncio.gather(*(channel.close() for channel in channels.values()))
        saga_log.close()
