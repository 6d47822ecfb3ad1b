"""Serve the catalog over REST: GET /catalog/items, GET /catalog/items/<sku>, and its own counters.

Each answer says what the catalog saw of its caller (``seen``): the identity
headers and whether the token behind them verifies here. /admin/* is the
lab's hook (its own port, never through the gateway).
"""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

from .backend import CatalogCounters, ItemCatalog
from .identity import TokenCheck, seen

CATALOG_KEY = web.AppKey("catalog", ItemCatalog)
CHECK_KEY = web.AppKey("check", TokenCheck)


def _count(request: web.Request) -> None:
    counters = request.app[CATALOG_KEY].counters
    counters.requests += 1
    counters.with_identity_header += "x-user-id" in request.headers
    counters.with_token += "Authorization" in request.headers


async def items(request: web.Request) -> web.Response:
    _count(request)
    try:
        limit = int(request.query.get("limit", "5"))
    except ValueError:
        return web.json_response({"detail": "limit: a whole number"}, status=400)
    found = await request.app[CATALOG_KEY].items(limit)
    return web.json_response({"items": found, "seen": await seen(request, request.app[CHECK_KEY])})


async def item(request: web.Request) -> web.Response:
    _count(request)
    found = await request.app[CATALOG_KEY].item(request.match_info["sku"])
    if found is None:
        return web.json_response({"detail": "no such item"}, status=404)
    return web.json_response({"item": found, "seen": await seen(request, request.app[CHECK_KEY])})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[CATALOG_KEY].counters))


async def reset(request: web.Request) -> web.Response:
    request.app[CATALOG_KEY].counters = CatalogCounters()
    return web.json_response({"reset": True})


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    app[CATALOG_KEY] = ItemCatalog(float(ctx.settings.get("catalog_work_ms", 0)))
    app[CHECK_KEY] = TokenCheck(
        ctx.address("issuer"), str(ctx.settings["issuer"]), str(ctx.settings["audience"])
    )
    app.router.add_get("/catalog/items", items)
    app.router.add_get("/catalog/items/{sku}", item)
    app.router.add_get("/admin/stats", stats)
    app.router.add_post("/admin/reset", reset)
    await serve_http(ctx, app)
