"""Serve the backend over HTTP: GET /quote, plus its own counters and behaviour knobs.

Nothing here knows about the mesh: the same code answers a sidecar and a
direct caller. /admin/* is the lab's hook to make this one replica slow or
failing and to read its counters; experiments call it on the replica's own
port, never through the mesh.
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

from .backend import Behaviour, Counters, PriceBackend
from .interface import Quote

BACKEND_KEY = web.AppKey("backend", PriceBackend)


async def quote(request: web.Request) -> web.Response:
    backend = request.app[BACKEND_KEY]
    answer = await backend.quote(
        request.query.get("item", "book"), traced="traceparent" in request.headers
    )
    if isinstance(answer, Quote):
        return web.json_response(asdict(answer))
    return web.json_response({"detail": "replica told to fail"}, status=answer)


async def stats(request: web.Request) -> web.Response:
    backend = request.app[BACKEND_KEY]
    return web.json_response(
        {"replica": backend.replica, **asdict(backend.counters), **asdict(backend.behaviour)}
    )


async def behave(request: web.Request) -> web.Response:
    """Set this replica's delay and error rate; reset its counters when asked."""
    backend = request.app[BACKEND_KEY]
    body = await request.json()
    try:
        behaviour = Behaviour(
            delay_ms=min(max(float(body.get("delay_ms", 0)), 0.0), 10_000.0),
            error_rate=min(max(float(body.get("error_rate", 0)), 0.0), 1.0),
            error_status=int(body.get("error_status", 503)),
        )
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text='{"detail": "delay_ms, error_rate: numbers"}') from None
    if not 500 <= behaviour.error_status <= 599:
        raise web.HTTPBadRequest(text='{"detail": "error_status must be 5xx"}')
    backend.behaviour = behaviour
    if body.get("reset"):
        backend.counters = Counters()
    return web.json_response(asdict(backend.behaviour))


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    app[BACKEND_KEY] = PriceBackend(
        replica=ctx.replica, work_ms=float(ctx.settings.get("backend_work_ms", 0))
    )
    app.router.add_get("/quote", quote)
    app.router.add_get("/admin/stats", stats)
    app.router.add_put("/admin/behaviour", behave)
    await serve_http(ctx, app)
