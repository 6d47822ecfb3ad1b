"""Serve the backend-for-frontend: one screen's data in one call, and REST in front of gRPC orders.

GET /bff/home?sku=...&deadline_ms=... calls the catalog (REST), orders (gRPC)
and reviews (REST) at once and answers by the deadline with what it has
(``aggregate.gather_by_deadline``). GET /orders/ and GET /orders/<id>
translate REST calls into the orders service's gRPC. The caller's identity, which the gateway
wrote from the verified token, travels on to every call.
"""

from __future__ import annotations

import aiohttp
import grpc
from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

from ..orders.client import OrdersGrpcClient
from .aggregate import gather_by_deadline

SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
ORDERS_KEY = web.AppKey("orders", OrdersGrpcClient)
CTX_KEY = web.AppKey("ctx", object)
IDENTITY_HEADERS = ("x-user-id", "x-user-scope", "authorization")


def _identity(request: web.Request) -> dict[str, str]:
    return {name: request.headers[name] for name in IDENTITY_HEADERS if name in request.headers}


async def _get_json(session: aiohttp.ClientSession, url: str, headers: dict) -> dict:
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{url.split('/', 3)[-1]} answered {response.status}")
        return await response.json()


async def order(request: web.Request) -> web.Response:
    try:
        order_id = int(request.match_info["order_id"])
    except ValueError:
        return web.json_response({"detail": "order id: a whole number"}, status=400)
    metadata = tuple((k, v) for k, v in _identity(request).items() if k != "authorization")
    try:
        answer = await request.app[ORDERS_KEY].get_order(order_id, metadata=metadata, timeout_s=5)
    except grpc.aio.AioRpcError as error:
        status = 400 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 502
        return web.json_response(
            {"detail": f"orders: {error.code().name}: {error.details()}"}, status=status
        )
    return web.json_response({"order": answer, "via": "bff (REST to gRPC)"})


async def orders(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "3"))
    except ValueError:
        return web.json_response({"detail": "limit: a whole number"}, status=400)
    identity = _identity(request)
    metadata = tuple((k, v) for k, v in identity.items() if k != "authorization")
    try:
        answer = await request.app[ORDERS_KEY].list_orders(
            identity.get("x-user-id", "guest"), limit, metadata=metadata, timeout_s=5
        )
    except grpc.aio.AioRpcError as error:
        return web.json_response(
            {"detail": f"orders: {error.code().name}: {error.details()}"}, status=502
        )
    return web.json_response({**answer, "via": "bff (REST to gRPC)"})


async def home(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    try:
        deadline_ms = int(
            request.query.get("deadline_ms", ctx.settings.get("bff_deadline_ms", 150))
        )
    except ValueError:
        return web.json_response({"detail": "deadline_ms: a whole number"}, status=400)
    deadline_ms = max(10, min(deadline_ms, 10_000))
    sku = request.query.get("sku", "sku-001")[:32]
    headers = _identity(request)
    metadata = tuple((k, v) for k, v in headers.items() if k != "authorization")
    session = request.app[SESSION_KEY]
    calls = {
        "catalog": _get_json(
            session, f"http://{ctx.address('catalog')}/catalog/items/{sku}", headers
        ),
        "orders": request.app[ORDERS_KEY].list_orders(
            headers.get("x-user-id", "guest"), 3, metadata=metadata, timeout_s=deadline_ms / 1000
        ),
        "reviews": _get_json(session, f"http://{ctx.address('reviews')}/reviews/{sku}", headers),
    }
    result = await gather_by_deadline(calls, deadline_ms / 1000)
    return web.json_response({**result, "deadline_ms": deadline_ms})


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    channel = grpc.aio.insecure_channel(ctx.address("orders"))
    app[SESSION_KEY] = session
    app[ORDERS_KEY] = OrdersGrpcClient(channel)
    app[CTX_KEY] = ctx
    app.router.add_get("/orders/", orders)
    app.router.add_get("/orders/{order_id}", order)
    app.router.add_get("/bff/home", home)
    try:
        await serve_http(ctx, app)
    finally:
        await session.close()
        await channel.close()
