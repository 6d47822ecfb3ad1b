"""Helpers for a lab service's ``main``: an aiohttp app or a grpc.aio server wired for the lab.

Both come with the health endpoint (the supervisor probes it only when a
service never calls ``ctx.ready()``; these helpers call it once listening) and
the learner's faults applied (health excepted), and bind 127.0.0.1 only::

    async def main(ctx):
        app = http_app(ctx)
        app.router.add_get("/items", list_items)
        await serve_http(ctx, app)

    async def main(ctx):
        server = grpc_server(ctx)
        add_MyServicer_to_server(MyServicer(), server)
        await serve_grpc(ctx, server)
"""

from __future__ import annotations

import asyncio
import faulthandler
import signal
from typing import Any
from collections.abc import Awaitable, Callable, Iterable

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as aio_health

from .faults import FaultInterceptor, fault_middleware
from .spec import ServiceContext


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def add_health_route(app: web.Application) -> None:
    """Add GET /healthz (never delayed nor failed by faults) to an aiohttp app."""
    app.router.add_get("/healthz", _healthz)


def http_app(
    ctx: ServiceContext, *, middlewares: Iterable[Any] = (), **kwargs: Any
) -> web.Application:
    """Return an aiohttp app (traced) with /healthz and the service's fault middleware."""
    # web.Application is looked up now, after init_tracing swapped in the traced class.
    app = web.Application(middlewares=[fault_middleware(ctx.faults), *middlewares], **kwargs)
    add_health_route(app)
    return app


async def listen_http(ctx: ServiceContext, runner: web.AppRunner) -> None:
    """Listen on 127.0.0.1:ctx.port with a set-up runner, then tell the supervisor it is ready.

    SO_REUSEPORT: the supervisor holds the port bound for the sandbox's life
    (``runtime/plan.py``, ``reserve_port``), and a listener shares it only so.
    """
    await web.TCPSite(runner, "127.0.0.1", ctx.port, reuse_port=True).start()
    ctx.ready()  # listening: the supervisor need not probe


async def serve_http(ctx: ServiceContext, app: web.Application) -> None:
    """Serve ``app`` on 127.0.0.1:ctx.port until cancelled."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await listen_http(ctx, runner)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def add_health_servicer(server: grpc.aio.Server) -> aio_health.HealthServicer:
    """Add the standard grpc.health.v1 service, SERVING for "" (the whole server)."""
    health = aio_health.HealthServicer()  # starts SERVING for ""
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    return health


def grpc_server(
    ctx: ServiceContext, *, interceptors: Iterable[Any] = (), **kwargs: Any
) -> grpc.aio.Server:
    """Return a grpc.aio server (traced) with the health service and fault interceptor, bound."""
    server = grpc.aio.server(interceptors=[FaultInterceptor(ctx.faults), *interceptors], **kwargs)
    add_health_servicer(server)
    server.add_insecure_port(f"127.0.0.1:{ctx.port}")
    return server


async def serve_grpc(ctx: ServiceContext, server: grpc.aio.Server) -> None:
    """Start ``server`` and serve until cancelled."""
    await server.start()
    ctx.ready()  # listening, and the health service says SERVING for ""
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(grace=0.5)


async def serve_until_terminated(main: Callable[[Any], Awaitable[None]], ctx: Any) -> int:
    """Run a service's ``main(ctx)`` until SIGTERM cancels it; return the exit code 0.

    SIGUSR1 prints every thread's stack to stderr (the service's log), which is
    what a test shows when a service hangs (``tests/sandboxes.py``, ``dump_stacks``).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await main(ctx)
    except asyncio.CancelledError:
        pass
    return 0
