"""HTTP front of the projector: list, read, add, rebuild and drop views."""

from __future__ import annotations

import asyncio
from functools import partial
import re
import threading

from aiohttp import web

from sandbox_services.runtime.web import fault_middleware, json_body

from sandbox_services.event_sourcing.projections import DEFAULT_VIEWS
from sandbox_services.event_sourcing import knobs
from sandbox_services.broker.gauges import GaugeReporter
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.runtime.serve import serve_http

from .backend import ProjectorEngine
from .interface import ViewError
from .store import ProjectorStore

VIEW_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


async def views(request: web.Request) -> web.Response:
    engine: ProjectorEngine = request.app["engine"]
    return web.json_response({s.name: vars(s) for s in engine.statuses()})


async def view(request: web.Request) -> web.Response:
    engine: ProjectorEngine = request.app["engine"]
    try:
        status, state = engine.snapshot(request.match_info["name"])
    except ViewError as error:
        return web.json_response({"detail": str(error)}, status=404)
    return web.json_response({**vars(status), "state": state})


async def add_view(request: web.Request) -> web.Response:
    data = await json_body(request)
    name, kind = data.get("name"), data.get("kind")
    if not isinstance(name, str) or not VIEW_NAME.match(name):
        return web.json_response(
            {"detail": "name: lowercase letters, digits, '-', 1..32"}, status=400
        )
    return await _call(request, "add", name, kind, status=201)


async def rebuild(request: web.Request) -> web.Response:
    data = await json_body(request) if request.can_read_body else {}
    source, until = data.get("from", "zero"), data.get("until_offset")
    if source not in ("zero", "snapshot"):
        return web.json_response({"detail": "from: must be zero or snapshot"}, status=400)
    if until is not None and (not isinstance(until, int) or isinstance(until, bool) or until < 0):
        return web.json_response(
            {"detail": "until_offset: must be a non-negative integer"}, status=400
        )
    return await _call(request, "rebuild", request.match_info["name"], source, until)


async def snapshot(request: web.Request) -> web.Response:
    return await _call(request, "snapshot", request.match_info["name"])


async def drop(request: web.Request) -> web.Response:
    return await _call(request, "drop", request.match_info["name"])


async def _call(request: web.Request, action: str, *args, status: int = 200) -> web.Response:
    engine: ProjectorEngine = request.app["engine"]
    try:
        result = await engine.request(action, *args)
    except ViewError as error:
        return web.json_response({"detail": str(error)}, status=400)
    return web.json_response(vars(result), status=status)


async def stats(request: web.Request) -> web.Response:
    engine: ProjectorEngine = request.app["engine"]
    return web.json_response({"reconnects": engine.reconnects})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def main(ctx: ServiceContext) -> None:
    """Serve the projector until cancelled."""
    gauges = GaugeReporter(ctx.redis_url, ctx.sandbox_id, f"projector-{ctx.replica}")
    engine = ProjectorEngine(
        amqp_url=ctx.amqp_url,
        stream=ctx.prefix + knobs.STREAM,
        store=ProjectorStore(ctx.workdir / f"{ctx.name}.sqlite3"),
        batch=knobs.PROJECTION_BATCH,
        prefetch=knobs.PROJECTION_PREFETCH,
        max_views=knobs.MAX_VIEWS,
        on_applied=lambda n: gauges.add(knobs.STREAM, "delivered", n),
        declare=partial(knobs.declare_log, prefix=ctx.prefix),
    )
    gauges.start()
    thread = threading.Thread(
        target=engine.run, args=(DEFAULT_VIEWS,), name="projector", daemon=True
    )
    thread.start()
    await asyncio.to_thread(engine.ready.wait, 30)
    # The learner's delay and error rate for this service (the runtime applies none).
    app = web.Application(middlewares=[fault_middleware(ctx.faults)])
    app["engine"] = engine
    app.add_routes(
        [
            web.get("/views", views),
            web.post("/views", add_view),
            web.get("/views/{name}", view),
            web.post("/views/{name}/rebuild", rebuild),
            web.post("/views/{name}/snapshot", snapshot),
            web.delete("/views/{name}", drop),
            web.get("/stats", stats),
            web.get("/healthz", healthz),
        ]
    )
    try:
        await serve_http(ctx, app)
    finally:
        engine.stop.set()
        engine.wake()
        await asyncio.to_thread(thread.join, 5)
        gauges.stop()
