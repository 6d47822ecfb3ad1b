"""The selftest services: an HTTP echo, a gRPC greeter on raw bytes, an AMQP listener."""

from __future__ import annotations

import asyncio
import os
import threading

import grpc
import pika
from aiohttp import web

from sandbox_services.runtime.serve import grpc_server, http_app, serve_grpc, serve_http
from sandbox_services.runtime.spec import InjectedFault, ServiceContext

from .broker import QUEUE_ARGUMENTS, queue_name


def _break_if_asked(ctx: ServiceContext) -> None:
    # The runtime's tests start a host with LAB_SELFTEST_BROKEN=<service> to see
    # how a service that dies before it is ready is reported.
    if os.environ.get("LAB_SELFTEST_BROKEN") == ctx.name:
        raise SystemExit(3)


async def echo(ctx: ServiceContext) -> None:
    """Answer GET /echo?message=... with the message and which replica answered."""
    _break_if_asked(ctx)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": request.query.get("message", ""), "replica": ctx.replica}
        )

    app = http_app(ctx)
    app.router.add_get("/echo", answer)
    await serve_http(ctx, app)


async def _hello(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"hello, " + request


async def greeter(ctx: ServiceContext) -> None:
    """Answer /selftest.Greeter/Hello with b"hello, " + the request bytes."""
    _break_if_asked(ctx)
    server = grpc_server(ctx)
    handler = grpc.method_handlers_generic_handler(
        "selftest.Greeter", {"Hello": grpc.unary_unary_rpc_method_handler(_hello)}
    )
    server.add_generic_rpc_handlers((handler,))
    await serve_grpc(ctx, server)


def _consume(ctx: ServiceContext, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(ctx.amqp_url))
    try:
        channel = connection.channel()
        queue = queue_name(ctx.prefix)
        channel.queue_declare(queue, arguments=QUEUE_ARGUMENTS)
        received = 0

        def on_message(channel, method, properties, body) -> None:
            nonlocal received
            try:
                asyncio.run_coroutine_threadsafe(ctx.faults.apply(), loop).result()
            except InjectedFault:
                channel.basic_nack(method.delivery_tag, requeue=False)
                return
            received += 1
            ctx.metrics({"received": received})
            channel.basic_ack(method.delivery_tag)

        channel.basic_consume(queue, on_message)
        loop.call_soon_threadsafe(ctx.ready)
        while not stop.is_set():
            connection.process_data_events(time_limit=0.2)
    finally:
        connection.close()


async def listener(ctx: ServiceContext) -> None:
    """Consume this sandbox's selftest queue (pika in a thread, as blocking pika wants)."""
    _break_if_asked(ctx)
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    consumer = loop.run_in_executor(None, _consume, ctx, loop, stop)
    try:
        await consumer
    finally:
        stop.set()
        await asyncio.shield(consumer)
