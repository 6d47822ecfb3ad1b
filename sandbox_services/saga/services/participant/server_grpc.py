"""Serve a participant: gRPC commands (orchestration), its event consumer and relay (choreography).

Each participant's ``server_grpc.main`` (services/orders/, payments/,
inventory/, shipping/) hands its backend and servicer to ``serve_participant``.
Its servicer parses the request and calls ``StepRunner``, which runs the
backend in a worker thread (SQLite and the simulated work block) and shapes the
reply.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import grpc

from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.protos_gen.labapi.saga.v1 import saga_pb2
from sandbox_services.runtime.serve import grpc_server
from sandbox_services.runtime.spec import ServiceContext

from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.interface import StepError, StepTimeout
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


async def serve_participant(
    ctx: ServiceContext,
    backend_class: type[ParticipantBackend],
    servicer_class: Callable[[StepRunner], object],
    add_servicer: Callable[[object, grpc.aio.Server], None],
) -> None:
    """Serve one participant until cancelled."""
    config = SagaConfig.from_settings(ctx.settings)
    service = backend_class.service
    backend = backend_class.open(ctx.workdir, config)
    stop, relay_wake = threading.Event(), threading.Event()
    # The runtime's server: bound to 127.0.0.1:ctx.port, health service, learner's faults.
    server = grpc_server(ctx)
    add_servicer(servicer_class(StepRunner(backend, relay_wake)), server)
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
    ctx.ready()
    try:
        await server.wait_for_termination()
    finally:
        stop.set()
        relay_wake.set()
        consumer.wake()
        await server.stop(0.5)
        await asyncio.to_thread(consumer.join, 5)
        await asyncio.to_thread(relay.join, 5)
        backend.close()
