"""Serve the caller's API over HTTP: each route runs one scenario against the catalog.

The lab's experiments call these routes, so a trace reads learner -> caller
-> catalog-rest / catalog-grpc. Addresses of the catalog come from the
sandbox, never from the request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox_services.rest_vs_grpc.services.caller import scenarios
from sandbox_services.rest_vs_grpc.services.catalog.interface import CallFailed
from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

ADDRESSES_KEY = web.AppKey("addresses", dict)
SYMBOL_KEY = web.AppKey("symbol", str)


def _clamp(value: Any, low: float, high: float, default: float) -> float:
    """Return value as a number within [low, high]; the platform validated it, this is defence."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, low), high)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"detail": "body is not JSON"}') from None
    return body if isinstance(body, dict) else {}


def _route(scenario: Callable[[web.Request, dict], Awaitable[dict]]) -> Callable:
    """Wrap a scenario as a POST handler: JSON body in, JSON result out, 502 if the catalog fails."""

    async def handler(request: web.Request) -> web.Response:
        try:
            result = await scenario(request, await _body(request))
        except CallFailed as error:
            return web.json_response({"detail": f"catalog call failed: {error}"}, status=502)
        return web.json_response(result)

    return handler


async def one_call(request: web.Request, body: dict) -> dict:
    items = int(_clamp(body.get("items"), 1, 1000, 10))
    return await scenarios.one_call(request.app[ADDRESSES_KEY], items)


async def streaming(request: web.Request, body: dict) -> dict:
    return await scenarios.streaming(
        request.app[ADDRESSES_KEY],
        request.app[SYMBOL_KEY],
        duration_s=_clamp(body.get("duration_s"), 0.5, 10, 3),
        poll_interval_s=_clamp(body.get("poll_interval_ms"), 10, 5000, 250) / 1000,
    )


async def contract(request: web.Request, body: dict) -> dict:
    return await scenarios.contract(request.app[ADDRESSES_KEY])


async def multiplexing(request: web.Request, body: dict) -> dict:
    return await scenarios.multiplexing(
        request.app[ADDRESSES_KEY],
        calls=int(_clamp(body.get("calls"), 1, 200, 32)),
        hold_ms=int(_clamp(body.get("hold_ms"), 0, 2000, 100)),
        rest_connection_limit=int(_clamp(body.get("rest_connection_limit"), 1, 100, 6)),
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application, addresses: dict[str, str], symbol: str) -> None:
    """Add the scenario routes; ``addresses`` maps "rest"/"grpc" to the catalog's addresses."""
    app[ADDRESSES_KEY] = addresses
    app[SYMBOL_KEY] = symbol
    app.router.add_post("/v1/one-call", _route(one_call))
    app.router.add_post("/v1/streaming", _route(streaming))
    app.router.add_post("/v1/contract", _route(contract))
    app.router.add_post("/v1/multiplexing", _route(multiplexing))


async def serve(addresses: dict[str, str], symbol: str, port: int) -> None:
    """Serve on 127.0.0.1:port until cancelled, outside a sandbox (tests, benchmarks)."""
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    add_routes(app, addresses, symbol)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def main(ctx: ServiceContext) -> None:
    """Run the caller service of a sandbox (a ServiceSpec main)."""
    addresses = {"rest": ctx.address("catalog-rest"), "grpc": ctx.address("catalog-grpc")}
    app = http_app(ctx)  # /healthz and the learner's faults come with it
    add_routes(app, addresses, str(ctx.settings.get("ticker_symbol", "LAB")))
    await serve_http(ctx, app)
