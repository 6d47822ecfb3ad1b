"""Serve the gateway's own API (not the edge: the edge is HAProxy on its own port).

Routes (JSON unless said): GET /gateway (listener, policy, keys, processes,
counters), GET /gateway/config (text), POST /gateway/policy (YAML body; 400
naming the field), POST /gateway/policy/preview (the diff, not applied),
GET /gateway/totals (HAProxy's counters), GET /gateway/table/<limit> (a
stick table as HAProxy shows it), POST /gateway/delay {"delay_ms"},
POST /gateway/stop, POST /gateway/start, GET /gateway/spans?trace_id=.

The lesson page's policy editor reaches it through Redis, never this port
(``runtime.service_commands``): ops ``show``, ``preview`` and ``apply``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from sandbox_services.proxy.admin_server import SpanSink, invalid_response, untraced_application
from sandbox_services.runtime.serve import add_health_route, serve_http
from sandbox_services.runtime.service_commands import serve_commands
from sandbox_services.runtime.spec import ServiceContext

from ...gateway import Gateway
from ...policy import GatewayPolicyInvalid

log = logging.getLogger(__name__)
GATEWAY_KEY = web.AppKey("gateway", Gateway)
MAX_POLICY_BYTES = 65536
METRICS_INTERVAL_S = 1.0


async def describe(request: web.Request) -> web.Response:
    return web.json_response(request.app[GATEWAY_KEY].describe())


async def config(request: web.Request) -> web.Response:
    return web.Response(text=request.app[GATEWAY_KEY].proxy.config_text)


async def apply_policy(request: web.Request) -> web.Response:
    try:
        return web.json_response(await request.app[GATEWAY_KEY].apply(await request.text()))
    except GatewayPolicyInvalid as error:
        return invalid_response(error)


async def preview_policy(request: web.Request) -> web.Response:
    try:
        _, _, diff = request.app[GATEWAY_KEY].preview(await request.text())
    except GatewayPolicyInvalid as error:
        return invalid_response(error)
    return web.json_response({"diff": diff, "changed": bool(diff)})


async def totals(request: web.Request) -> web.Response:
    return web.json_response(await request.app[GATEWAY_KEY].totals())


async def table(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    name = request.match_info["limit"]
    if name not in gateway.policy.rate_limits:
        raise web.HTTPNotFound(text="no such rate limit")
    return web.Response(text=await gateway.rate_table(name))


async def delay(request: web.Request) -> web.Response:
    body = await request.json()
    value = body.get("delay_ms")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
        return web.json_response(
            {
                "detail": "delay_ms: 0 to 10000",
                "errors": {"delay_ms": ["a whole number from 0 to 10000"]},
            },
            status=400,
        )
    return web.json_response(await request.app[GATEWAY_KEY].set_delay(value))


async def stop(request: web.Request) -> web.Response:
    await request.app[GATEWAY_KEY].stop_proxy()
    return web.json_response({"running": False})


async def start(request: web.Request) -> web.Response:
    took = await request.app[GATEWAY_KEY].start_proxy()
    return web.json_response({"running": True, "start_ms": round(took, 1)})


async def _command(gateway: Gateway, command: dict) -> dict:
    """Answer the web tier (the lesson page's policy editor); diffs keyed by proxy, as the mesh's."""
    op = command.get("op")
    if op == "show":
        described = gateway.describe()
        return {"status": 200, "body": {**described, "config": gateway.proxy.config_text}}
    if op in ("apply", "preview"):
        text = command.get("policy")
        if not isinstance(text, str) or len(text.encode()) > MAX_POLICY_BYTES:
            return {
                "status": 400,
                "body": {
                    "detail": "policy: YAML text",
                    "errors": {"policy": ["must be YAML text under 64 KB"]},
                },
            }
        try:
            if op == "apply":
                applied = await gateway.apply(text)
                diff = applied.pop("diff")
                return {
                    "status": 200,
                    "body": {**applied, "diff": {"gateway": diff} if diff else {}, "applied": True},
                }
            _, _, diff = gateway.preview(text)
        except GatewayPolicyInvalid as error:
            return {"status": 400, "body": {"detail": str(error), "errors": error.errors}}
        return {
            "status": 200,
            "body": {"diff": {"gateway": diff} if diff else {}, "applied": False},
        }
    return {
        "status": 400,
        "body": {"detail": f"unknown op {op!r}", "errors": {"op": ["show, preview or apply"]}},
    }


async def _metrics(ctx: ServiceContext, gateway: Gateway) -> None:
    while True:
        await asyncio.sleep(METRICS_INTERVAL_S)
        try:
            await gateway.refresh_keys()
        except Exception:
            log.exception("reloading the issuer's new keys failed")
        try:
            ctx.metrics(
                {
                    "gateway": {
                        "version": gateway.version,
                        "running": gateway.proxy.pid is not None,
                        "by_route": dict(gateway.by_route),
                        "by_verdict": dict(gateway.by_verdict),
                        "delay_ms": gateway.delay_ms,
                    }
                }
            )
        except Exception:
            log.exception("gateway metrics failed")


async def main(ctx: ServiceContext) -> None:
    sink = SpanSink()
    gateway = Gateway(ctx.plan, sink.put)  # type: ignore[attr-defined]
    await gateway.start()
    app = untraced_application()
    add_health_route(app)
    app[GATEWAY_KEY] = gateway
    app.router.add_get("/gateway", describe)
    app.router.add_get("/gateway/config", config)
    app.router.add_post("/gateway/policy", apply_policy)
    app.router.add_post("/gateway/policy/preview", preview_policy)
    app.router.add_get("/gateway/totals", totals)
    app.router.add_get("/gateway/table/{limit}", table)
    app.router.add_post("/gateway/delay", delay)
    app.router.add_post("/gateway/stop", stop)
    app.router.add_post("/gateway/start", start)
    sink.serve(app, "/gateway/spans")
    loops = [
        asyncio.ensure_future(_metrics(ctx, gateway)),
        asyncio.ensure_future(
            serve_commands(
                ctx.redis_url, ctx.sandbox_id, ctx.name, lambda command: _command(gateway, command)
            )
        ),
    ]
    try:
        await serve_http(ctx, app)
    finally:
        for task in loops:
            task.cancel()
        await gateway.stop()
