"""Serve the catalog as gRPC: the contract in protos/, protobuf messages, HTTP/2 (grpc.aio).

The servicer's methods keep the proto's CamelCase names. A request reaches
them already typed: the generated stub on the client refused anything that
did not fit the message, before a byte was sent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from sandbox_services.rest_vs_grpc.services.catalog import codec_proto
from sandbox_services.rest_vs_grpc.services.catalog.backend import (
    CatalogBackend,
    backend_from_settings,
)
from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    InvalidArgument,
    NotFound,
    Unavailable,
)
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc
from sandbox_services.protos_gen.labapi.evolution.v2 import item_pb2 as item_v2
from sandbox_services.protos_gen.labapi.evolution.v2 import item_pb2_grpc as item_v2_grpc
from sandbox_services.runtime.serve import grpc_server, serve_grpc
from sandbox_services.runtime.spec import ServiceContext

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Catalog"].full_name
SHELF_SERVICE_NAME = item_v2.DESCRIPTOR.services_by_name["Shelf"].full_name
Reply = TypeVar("Reply")


def _note_sizes(request: Any, reply: Any) -> None:
    """Put the serialized message sizes on the server span, beside the REST body sizes."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("rpc.request.body.size", request.ByteSize())
        span.set_attribute("rpc.response.body.size", reply.ByteSize())
        span.set_attribute("lab.encoding", "protobuf")


def _status_errors(
    method: Callable[..., Awaitable[Reply]],
) -> Callable[..., Awaitable[Reply]]:
    """Turn the backend's refusals into gRPC status codes, as REST turns them into 4xx."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Reply:
        try:
            reply = await method(self, request, context)
        except InvalidArgument as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except NotFound as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        except Unavailable as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        _note_sizes(request, reply)
        return reply

    return wrapper


class CatalogServicer(pb_grpc.CatalogServicer):
    """The catalog's RPCs: parse the typed request, call the backend, build the reply."""

    def __init__(self, backend: CatalogBackend) -> None:
        self._backend = backend

    @_status_errors
    async def ListProducts(self, request: pb.ListProductsRequest, context: Any) -> Any:
        page = self._backend.list_products(request.count, request.offset)
        return codec_proto.page_to_proto(page)

    @_status_errors
    async def Reserve(self, request: pb.ReserveRequest, context: Any) -> Any:
        # proto3 has no "required": a count the client left out arrives as 0,
        # and only this check tells it apart from a real request.
        reservation = self._backend.reserve(request.product_id, request.count)
        return codec_proto.reservation_to_proto(reservation)

    @_status_errors
    async def GetPrice(self, request: pb.GetPriceRequest, context: Any) -> Any:
        return codec_proto.price_to_proto(self._backend.get_price(request.symbol))

    async def WatchPrices(self, request: pb.WatchPricesRequest, context: Any) -> Any:
        try:
            updates = self._backend.watch_prices(request.symbol)
        except NotFound as error:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        sent = 0
        # One call, many messages: each update is pushed the moment the ticker
        # emits it, on the HTTP/2 stream this call opened.
        async for update in updates:
            yield codec_proto.price_to_proto(update)
            sent += 1
            if request.max_updates and sent >= request.max_updates:
                return

    @_status_errors
    async def Hold(self, request: pb.HoldRequest, context: Any) -> Any:
        # context.peer() names the TCP connection this call came on.
        peer = await self._backend.hold(request.window, request.hold_ms, context.peer())
        return pb.HoldReply(peer=peer)

    @_status_errors
    async def SlowLookup(self, request: pb.LookupRequest, context: Any) -> Any:
        span = trace.get_current_span()
        # The caller's deadline arrived as the grpc-timeout header: the server
        # knows how long the caller will wait before doing any work.
        remaining = context.time_remaining()
        if remaining is not None:
            span.set_attribute("lab.deadline.remaining_ms", round(remaining * 1000, 1))
        try:
            product = await self._backend.slow_lookup(
                request.product_id, request.work_ms, request.window
            )
        except asyncio.CancelledError:
            span.add_event("cancelled: the caller gave up (deadline or cancel)")
            raise
        return codec_proto.product_to_proto(product)

    @_status_errors
    async def FlakyLookup(self, request: pb.LookupRequest, context: Any) -> Any:
        # gRPC's own retries say which attempt this is; the first has no header.
        attempt = dict(context.invocation_metadata()).get("grpc-previous-rpc-attempts", "0")
        trace.get_current_span().set_attribute("lab.previous_attempts", int(attempt))
        product = self._backend.flaky_lookup(
            request.product_id, request.failure_ratio, request.window
        )
        return codec_proto.product_to_proto(product)

    async def ReserveMany(self, requests: Any, context: Any) -> Any:
        # Both directions at once: each answer goes out as soon as its request
        # is read, while the client is still sending the next ones.
        self._backend.reserve_stream_opened()
        async for request in requests:
            try:
                reservation = self._backend.reserve_streamed(
                    request.product_id, request.count, request.window
                )
            except (InvalidArgument, NotFound) as error:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            yield codec_proto.reservation_to_proto(reservation)

    @_status_errors
    async def GetServerStats(self, request: pb.ServerStatsRequest, context: Any) -> Any:
        return codec_proto.stats_to_proto(self._backend.server_stats(request.window))


class ShelfServicer(item_v2_grpc.ShelfServicer):
    """The catalog's products as the newer (v2) Item schema writes them: stock added, legacy_code gone."""

    def __init__(self, backend: CatalogBackend) -> None:
        self._backend = backend

    @_status_errors
    async def GetItem(self, request: item_v2.GetItemRequest, context: Any) -> Any:
        product = self._backend.get_item(request.id)
        return item_v2.Item(
            id=product.id, name=product.name, price_cents=product.price_cents, stock=product.stock
        )


async def start_server(backend: CatalogBackend, port: int) -> grpc.aio.Server:
    """Start the gRPC server with the health service on 127.0.0.1:port, outside a sandbox."""
    server = grpc.aio.server()
    pb_grpc.add_CatalogServicer_to_server(CatalogServicer(backend), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise OSError(f"cannot bind 127.0.0.1:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server


async def serve(backend: CatalogBackend, port: int) -> None:
    """Serve until cancelled, outside a sandbox (tests, benchmarks)."""
    server = await start_server(backend, port)
    ticker = asyncio.create_task(backend.ticker.run())
    try:
        await server.wait_for_termination()
    finally:
        ticker.cancel()
        await server.stop(grace=0.5)


async def main(ctx: ServiceContext) -> None:
    """Run the catalog-grpc service of a sandbox (a ServiceSpec main)."""
    backend = backend_from_settings(dict(ctx.settings))
    # The runtime's server brings the health service and the learner's faults.
    server = grpc_server(ctx)
    pb_grpc.add_CatalogServicer_to_server(CatalogServicer(backend), server)
    item_v2_grpc.add_ShelfServicer_to_server(ShelfServicer(backend), server)
    # Server reflection: any client can ask this server for its .proto
    # descriptors and call it without a copy of protos/ (the debuggability
    # experiment). Production services often leave it off, or only on internally.
    reflection.enable_server_reflection(
        (SERVICE_NAME, SHELF_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    ticker = asyncio.create_task(backend.ticker.run())
    try:
        await serve_grpc(ctx, server)
    finally:
        ticker.cancel()
