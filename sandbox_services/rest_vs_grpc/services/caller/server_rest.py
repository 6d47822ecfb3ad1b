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

from sandbox_services.rest_vs_grpc.knobs import CATALOG_SIZE
from sandbox_services.rest_vs_grpc.services.caller import scenarios
from sandbox_services.rest_vs_grpc.services.catalog.interface import CallFailed
from sandbox_services.runtime.params import Param, ParameterError, validate
from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

ADDRESSES_KEY = web.AppKey("addresses", dict)
SYMBOL_KEY = web.AppKey("symbol", str)


# What each route takes: the service's own limits, which hold every experiment's
# (the experiments call these routes with parameters the platform already
# validated against knobs.PARAMETERS). A body outside them is refused with a 400
# naming the field, never clamped into range; a missing field takes its default.
ROUTES = {
    "one-call": (Param("items", "int", 10, 1, CATALOG_SIZE),),
    "streaming": (
        Param("duration_s", "float", 3.0, 0.5, 10.0),
        Param("poll_interval_ms", "float", 250.0, 10.0, 5000.0),
    ),
    "multiplexing": (
        Param("calls", "int", 32, 1, 200),
        Param("hold_ms", "int", 100, 0, 2000),
        Param("rest_connection_limit", "int", 6, 1, 100),
    ),
}


def _checked(route: str, body: dict[str, Any]) -> dict[str, Any]:
    """Return the body's values for a route, or answer 400 naming each bad field."""
    try:
        return validate(ROUTES[route], body)
    except ParameterError as error:
        raise web.HTTPBadRequest(
            text=json.dumps({"detail": str(error), "errors": error.errors}),
            content_type="application/json",
        ) from None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text='{"detail": "body is not JSON"}') from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"detail": "body is not a JSON object"}')
    return body


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
    values = _checked("one-call", body)
    return await scenarios.one_call(request.app[ADDRESSES_KEY], values["items"])


async def streaming(request: web.Request, body: dict) -> dict:
    values = _checked("streaming", body)
    return await scenarios.streaming(
        request.app[ADDRESSES_KEY],
        request.app[SYMBOL_KEY],
        duration_s=values["duration_s"],
        poll_interval_s=values["poll_interval_ms"] / 1000,
    )


async def contract(request: web.Request, body: dict) -> dict:
    return await scenarios.contract(request.app[ADDRESSES_KEY])


async def multiplexing(request: web.Request, body: dict) -> dict:
    values = _checked("multiplexing", body)
    return await scenarios.multiplexing(request.app[ADDRESSES_KEY], **values)


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
