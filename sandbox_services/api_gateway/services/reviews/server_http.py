"""Serve reviews over REST: GET /reviews/<sku>. The BFF's third call, and the one made slow.

The learner's (and the experiments') delay fault on this service is applied
by the runtime's fault middleware, before the handler: the slow back end of
the aggregation experiment is this service under a real injected delay.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

WORK_KEY = web.AppKey("work_ms", float)
COUNT_KEY = web.AppKey("count", list)


async def reviews(request: web.Request) -> web.Response:
    request.app[COUNT_KEY][0] += 1
    await asyncio.sleep(request.app[WORK_KEY] / 1000)
    sku = request.match_info["sku"]
    return web.json_response(
        {
            "sku": sku,
            "reviews": [
                {"stars": 5, "text": f"{sku}: does what it says"},
                {"stars": 3, "text": f"{sku}: fine, a little loud"},
            ],
        }
    )


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"requests": request.app[COUNT_KEY][0]})


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    app[WORK_KEY] = float(ctx.settings.get("reviews_work_ms", 0))
    app[COUNT_KEY] = [0]
    app.router.add_get("/reviews/{sku}", reviews)
    app.router.add_get("/admin/stats", stats)
    await serve_http(ctx, app)
