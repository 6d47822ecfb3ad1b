"""Serve the catalog as REST: resources and HTTP verbs, JSON bodies, HTTP/1.1 (aiohttp).

The handlers only parse, call the backend, and shape the answer. Nothing here
checks a field's type before run time: JSON carries numbers and strings, but
which field must be which is only known to the code below (and to whatever
documentation the team keeps in step with it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from opentelemetry import trace

from sandbox_services.rest_vs_grpc.services.catalog import codec_json
from sandbox_services.rest_vs_grpc.services.catalog.backend import (
    CatalogBackend,
    backend_from_settings,
)
from sandbox_services.rest_vs_grpc.services.catalog.interface import InvalidArgument, NotFound
from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

BACKEND_KEY = web.AppKey("backend", CatalogBackend)


def _json_response(request: web.Request, data: Any, status: int = 200) -> web.Response:
    """Encode ``data`` as JSON and note the body sizes on the server span."""
    body = json.dumps(data, separators=(",", ":")).encode()
    span = trace.get_current_span()
    if span.is_recording():
        # The learner compares these with the gRPC span's message sizes.
        span.set_attribute("http.request.body.size", request.content_length or 0)
        span.set_attribute("http.response.body.size", len(body))
        span.set_attribute("lab.encoding", "json")
    return web.Response(body=body, status=status, content_type="application/json")


def _query_int(request: web.Request, name: str, default: int) -> int:
    """Return a query parameter as an int: in a URL every value arrives as text."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer, got {raw!r}") from None


@web.middleware
async def errors_as_json(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Turn the backend's refusals into 4xx answers with a reason, as the API promises."""
    try:
        return await handler(request)
    except InvalidArgument as error:
        _mark_span_error(error)
        return _json_response(request, {"detail": str(error)}, status=400)
    except NotFound as error:
        return _json_response(request, {"detail": str(error)}, status=404)


def _mark_span_error(error: Exception) -> None:
    # The HTTP instrumentation marks only 5xx as errors (a 4xx is the
    # client's fault); here the learner should see the refusal in red anyway.
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


async def list_products(request: web.Request) -> web.Response:
    backend = request.app[BACKEND_KEY]
    page = backend.list_products(_query_int(request, "count", 10), _query_int(request, "offset", 0))
    return _json_response(request, codec_json.page_to_json(page))


async def create_reservation(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body must be a JSON object")
    # Teaching point: {"count": "ten"} is perfectly valid JSON. It is refused
    # only here, at run time, when the backend looks at the value's type.
    reservation = request.app[BACKEND_KEY].reserve(body.get("product_id"), body.get("count"))
    return _json_response(request, codec_json.reservation_to_json(reservation), status=201)


async def get_price(request: web.Request) -> web.Response:
    update = request.app[BACKEND_KEY].get_price(request.match_info["symbol"])
    return _json_response(request, codec_json.price_to_json(update))


async def hold(request: web.Request) -> web.Response:
    host, port = request.transport.get_extra_info("peername")[:2]
    peer = await request.app[BACKEND_KEY].hold(
        request.query.get("window", ""), _query_int(request, "hold_ms", 0), f"{host}:{port}"
    )
    return _json_response(request, {"peer": peer})


async def server_stats(request: web.Request) -> web.Response:
    stats = request.app[BACKEND_KEY].server_stats(request.query.get("window", ""))
    return _json_response(request, codec_json.stats_to_json(stats))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application, backend: CatalogBackend) -> None:
    """Add the catalog's resources to ``app``."""
    app[BACKEND_KEY] = backend
    app.router.add_get("/v1/products", list_products)
    app.router.add_post("/v1/reservations", create_reservation)
    app.router.add_get("/v1/prices/{symbol}", get_price)
    app.router.add_get("/v1/hold", hold)
    app.router.add_get("/v1/stats", server_stats)


def make_app(backend: CatalogBackend) -> web.Application:
    """Return the REST application on its own, for a process outside a sandbox."""
    app = web.Application(middlewares=[errors_as_json])
    app.router.add_get("/healthz", healthz)
    add_routes(app, backend)
    return app


async def serve(backend: CatalogBackend, port: int) -> None:
    """Serve on 127.0.0.1:port until cancelled, outside a sandbox (tests, benchmarks)."""
    runner = web.AppRunner(make_app(backend), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ticker = asyncio.create_task(backend.ticker.run())
    try:
        await asyncio.Event().wait()
    finally:
        ticker.cancel()
        await runner.cleanup()


async def main(ctx: ServiceContext) -> None:
    """Run the catalog-rest service of a sandbox (a ServiceSpec main)."""
    backend = backend_from_settings(dict(ctx.settings))
    # The runtime's app brings /healthz and the learner's faults (delay, errors).
    app = http_app(ctx, middlewares=[errors_as_json])
    add_routes(app, backend)
    ticker = asyncio.create_task(backend.ticker.run())
    try:
        await serve_http(ctx, app)
    finally:
        ticker.cancel()
