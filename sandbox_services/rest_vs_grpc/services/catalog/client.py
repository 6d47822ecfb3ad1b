"""Call the catalog over the network: ``CatalogAPI`` over REST and over gRPC.

Construct a client inside a running event loop. Both keep ``calls_made`` (HTTP
requests or RPCs started) and ``last_sizes`` (request and response body bytes
of the last call), so a scenario can compare the two without knowing either.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import grpc

from sandbox_services.rest_vs_grpc.services.catalog import codec_json, codec_proto
from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    CallFailed,
    InvalidArgument,
    NotFound,
    PriceUpdate,
    ProductPage,
    Reservation,
    ServerStats,
)
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc


class RestCatalogClient:
    """The catalog over JSON and HTTP/1.1: one request per TCP connection at a time."""

    def __init__(
        self,
        address: str,
        *,
        connection_limit: int = 100,
        timeout_s: float = 10,
        count_connections: bool = False,
        headers: Mapping[str, str] | None = None,
        traced: bool = True,
    ) -> None:
        self.base_url = f"http://{address}"
        self.calls_made = 0
        self.connections_opened = 0
        self.last_sizes = (0, 0)
        trace_configs = []
        if count_connections:  # off by default: any trace config slows every request
            counting = aiohttp.TraceConfig()
            counting.on_connection_create_end.append(self._on_connection_created)
            trace_configs.append(counting)
        # HTTP/1.1 carries one exchange at a time per connection, so the
        # connector's limit is how many calls can be in flight at once.
        connector = aiohttp.TCPConnector(limit=connection_limit, limit_per_host=connection_limit)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            trace_configs=trace_configs,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )
        if not traced:
            _untrace_session(self._session)

    async def _on_connection_created(self, session: Any, context: Any, params: Any) -> None:
        self.connections_opened += 1

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls_made += 1
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(
                method, self.base_url + path, data=data, headers=headers
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            raise CallFailed(f"{method} {path}: {error!r}") from error
        self.last_sizes = (len(data or b""), len(raw))
        if status >= 400:
            detail = _detail(raw)
            if status == 400:
                raise InvalidArgument(detail)
            if status == 404:
                raise NotFound(detail)
            raise CallFailed(f"{method} {path}: HTTP {status} {detail}")
        return json.loads(raw)

    async def list_products(self, count: int, offset: int = 0) -> ProductPage:
        data = await self._call("GET", f"/v1/products?count={count}&offset={offset}")
        return codec_json.page_from_json(data)

    async def reserve(self, product_id: int, count: int) -> Reservation:
        # Whatever the caller passes goes out as JSON: nothing here stops
        # count="ten" before the server reads it.
        data = await self._call(
            "POST", "/v1/reservations", {"product_id": product_id, "count": count}
        )
        return codec_json.reservation_from_json(data)

    async def get_price(self, symbol: str) -> PriceUpdate:
        return codec_json.price_from_json(await self._call("GET", f"/v1/prices/{symbol}"))

    async def watch_prices(self, symbol: str, poll_interval_s: float) -> AsyncIterator[PriceUpdate]:
        # Request/response has no way for the server to speak first, so the
        # client asks again every poll_interval_s and keeps only what changed.
        last_sequence = 0
        while True:
            update = await self.get_price(symbol)
            if update.sequence != last_sequence:
                last_sequence = update.sequence
                yield update
            await asyncio.sleep(poll_interval_s)

    async def hold(self, window: str, hold_ms: int) -> str:
        data = await self._call("GET", f"/v1/hold?window={window}&hold_ms={hold_ms}")
        return data["peer"]

    async def server_stats(self, window: str = "") -> ServerStats:
        return codec_json.stats_from_json(await self._call("GET", f"/v1/stats?window={window}"))

    async def close(self) -> None:
        await self._session.close()


def _untrace_session(session: aiohttp.ClientSession) -> None:
    """Remove OpenTelemetry's hooks from a session, if the process was instrumented."""
    try:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    except ImportError:
        return
    AioHttpClientInstrumentor.uninstrument_session(session)


def _detail(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("detail", raw[:200]))
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")


# grpc.aio.insecure_channel as it was when this module was first imported. In
# a sandbox that is in the warm host, before any process's init_tracing wraps
# the factory with tracing interceptors; an untraced client uses it, because a
# channel with any interceptor at all pays for them on every call.
_PLAIN_INSECURE_CHANNEL = grpc.aio.insecure_channel


class GrpcCatalogClient:
    """The catalog over protobuf and HTTP/2: every call is a stream on one shared connection."""

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 10,
        metadata: Sequence[tuple[str, str]] | None = None,
        traced: bool = True,
    ) -> None:
        self.calls_made = 0
        self.last_sizes = (0, 0)
        self._timeout_s = timeout_s
        self._metadata = tuple(metadata) if metadata else None
        # One channel: calls are multiplexed as HTTP/2 streams on its connection.
        factory = grpc.aio.insecure_channel if traced else _PLAIN_INSECURE_CHANNEL
        self._channel = factory(address)
        self._stub = pb_grpc.CatalogStub(self._channel)

    async def _call(self, method: Any, request: Any) -> Any:
        self.calls_made += 1
        try:
            reply = await method(request, timeout=self._timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error
        self.last_sizes = (request.ByteSize(), reply.ByteSize())
        return reply

    async def list_products(self, count: int, offset: int = 0) -> ProductPage:
        request = pb.ListProductsRequest(count=count, offset=offset)
        return codec_proto.page_from_proto(await self._call(self._stub.ListProducts, request))

    async def reserve(self, product_id: int, count: int) -> Reservation:
        # The generated message class checks each field's type as it is set:
        # count="ten" raises TypeError here, and nothing is sent.
        request = pb.ReserveRequest(product_id=product_id, count=count)
        return codec_proto.reservation_from_proto(await self._call(self._stub.Reserve, request))

    async def get_price(self, symbol: str) -> PriceUpdate:
        request = pb.GetPriceRequest(symbol=symbol)
        return codec_proto.price_from_proto(await self._call(self._stub.GetPrice, request))

    async def watch_prices(self, symbol: str, poll_interval_s: float) -> AsyncIterator[PriceUpdate]:
        # One call; the server pushes each update as it happens. The poll
        # interval is not needed: nobody has to ask again.
        self.calls_made += 1
        call = self._stub.WatchPrices(pb.WatchPricesRequest(symbol=symbol), metadata=self._metadata)
        try:
            async for message in call:
                yield codec_proto.price_from_proto(message)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error
        finally:
            call.cancel()

    async def hold(self, window: str, hold_ms: int) -> str:
        reply = await self._call(self._stub.Hold, pb.HoldRequest(window=window, hold_ms=hold_ms))
        return reply.peer

    async def server_stats(self, window: str = "") -> ServerStats:
        reply = await self._call(self._stub.GetServerStats, pb.ServerStatsRequest(window=window))
        return codec_proto.stats_from_proto(reply)

    async def close(self) -> None:
        await self._channel.close()


def _translate(error: grpc.aio.AioRpcError) -> Exception:
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(error.details())
    if error.code() == grpc.StatusCode.NOT_FOUND:
        return NotFound(error.details())
    return CallFailed(f"{error.code().name}: {error.details()}")


# A W3C trace context whose "sampled" flag is off: a server that receives it
# follows it and records nothing, as for any call its caller chose not to trace.
UNSAMPLED_TRACEPARENT = "00-" + "5a" * 16 + "-" + "5b" * 8 + "-00"


def make_untraced_client(
    transport: str, address: str, **options: Any
) -> RestCatalogClient | GrpcCatalogClient:
    """Return a client whose calls carry an unsampled trace context, for use untraced.

    Neither the REST session nor the gRPC channel carries tracing hooks; call
    it under ``opentelemetry.instrumentation.utils.suppress_instrumentation``
    anyway, in case this module was imported after tracing began.
    """
    if transport == "rest":
        options.update(headers={"traceparent": UNSAMPLED_TRACEPARENT}, traced=False)
    else:
        options.update(metadata=(("traceparent", UNSAMPLED_TRACEPARENT),), traced=False)
    return make_client(transport, address, **options)


def make_client(
    transport: str, address: str, **options: Any
) -> RestCatalogClient | GrpcCatalogClient:
    """Return a catalog client for "rest" or "grpc"."""
    if transport == "rest":
        return RestCatalogClient(address, **options)
    if transport == "grpc":
        return GrpcCatalogClient(address, **options)
    raise ValueError(f"unknown transport {transport!r}")
