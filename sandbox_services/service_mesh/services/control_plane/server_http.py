"""Serve the mesh control plane: it starts the sidecars, then answers the lab over HTTP.

Routes (JSON unless said): GET /mesh (topology, policy, processes),
GET /mesh/state (each replica's state as HAProxy reports it, edges, refusals),
GET /mesh/config/<sidecar> (text), POST /mesh/policy (YAML body; 400 naming
the field), POST /mesh/policy/preview (the diff, not applied), POST
/mesh/rotate, POST /mesh/enabled, GET /mesh/spans?trace_id=.

It also publishes the replicas' states and the edges once a second as the
sandbox's metrics, which the lesson page draws as breakers and a graph.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os

from aiohttp import web

from sandbox_services.proxy.admin_server import SpanSink, invalid_response, untraced_application
from sandbox_services.runtime.serve import add_health_route, serve_http
from sandbox_services.runtime.service_commands import serve_commands
from sandbox_services.runtime.spec import ServiceContext

from ...control_plane import ControlPlane
from ...policy import PolicyInvalid

log = logging.getLogger(__name__)
PLANE_KEY = web.AppKey("plane", ControlPlane)
ENDPOINT_SYNC_S = 0.1
METRICS_INTERVAL_S = 1.0
MAX_POLICY_BYTES = 64 * 1024


async def topology(request: web.Request) -> web.Response:
    plane = request.app[PLANE_KEY]
    return web.json_response(
        {
            **plane.topology(),
            "policy": plane.policy_text,
            "processes": plane.processes(),
            "config_lines": plane.config_lines(),
            "history": plane.history,
            "control_plane_pid": os.getpid(),
        }
    )


async def state(request: web.Request) -> web.Response:
    plane = request.app[PLANE_KEY]
    return web.json_response(
        {
            "servers": await plane.server_states(),
            "edges": plane.edge_metrics(),
            "refused": list(plane.refused),
            "log_records": plane.records,
            "version": plane.version,
        }
    )


async def totals(request: web.Request) -> web.Response:
    return web.json_response(await request.app[PLANE_KEY].totals())


async def config(request: web.Request) -> web.Response:
    plane = request.app[PLANE_KEY]
    proxy = plane.proxies.get(request.match_info["sidecar"])
    if proxy is None:
        raise web.HTTPNotFound(text="no such sidecar")
    return web.Response(text=proxy.config_text)


async def apply_policy(request: web.Request) -> web.Response:
    try:
        applied = await request.app[PLANE_KEY].apply(await request.text())
    except PolicyInvalid as error:
        return invalid_response(error)
    return web.json_response(applied)


async def preview_policy(request: web.Request) -> web.Response:
    plane = request.app[PLANE_KEY]
    try:
        _, configs = plane.preview(await request.text())
    except PolicyInvalid as error:
        return invalid_response(error)
    diffs = _diffs(plane, configs)
    return web.json_response({"diff": diffs, "changed": sorted(diffs)})


async def rotate(request: web.Request) -> web.Response:
    return web.json_response(await request.app[PLANE_KEY].rotate())


async def enabled(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body.get("enabled"), bool):
        return web.json_response(
            {"detail": "enabled: true or false", "errors": {"enabled": ["must be true or false"]}},
            status=400,
        )
    request.app[PLANE_KEY].set_enabled(body["enabled"])
    return web.json_response({"enabled": body["enabled"]})


async def _command(plane: ControlPlane, command: dict) -> dict:
    """Answer the web tier (the lesson page's policy editor and breaker widget)."""
    op = command.get("op")
    if op == "show":
        return {
            "status": 200,
            "body": {
                "policy": plane.policy_text,
                "version": plane.version,
                "topology": plane.topology(),
                "servers": await plane.server_states(),
                "edges": plane.edge_metrics(),
                "history": plane.history,
            },
        }
    if op in ("apply", "preview"):
        text = command.get("policy")
        if not isinstance(text, str) or len(text) > MAX_POLICY_BYTES:
            return {
                "status": 400,
                "body": {
                    "detail": "policy: YAML text",
                    "errors": {"policy": ["must be YAML text under 64 KB"]},
                },
            }
        try:
            if op == "apply":
                return {"status": 200, "body": await plane.apply(text)}
            _, configs = plane.preview(text)
        except PolicyInvalid as error:
            return {"status": 400, "body": {"detail": str(error), "errors": error.errors}}
        return {"status": 200, "body": {"diff": _diffs(plane, configs), "applied": False}}
    return {
        "status": 400,
        "body": {"detail": f"unknown op {op!r}", "errors": {"op": ["show, preview or apply"]}},
    }


def _diffs(plane: ControlPlane, configs: dict[str, str]) -> dict[str, str]:
    return {
        name: "".join(
            difflib.unified_diff(
                plane.proxies[name].config_text.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{name}.cfg (running)",
                tofile=f"{name}.cfg (proposed)",
            )
        )
        for name, text in configs.items()
        if name in plane.started and text != plane.proxies[name].config_text
    }


async def _endpoints(plane: ControlPlane) -> None:
    while True:
        try:
            await plane.sync_endpoints()
        except Exception:
            log.exception("endpoint sync failed")
        await asyncio.sleep(ENDPOINT_SYNC_S)


async def _metrics(ctx: ServiceContext, plane: ControlPlane) -> None:
    while True:
        await asyncio.sleep(METRICS_INTERVAL_S)
        try:
            ctx.metrics(_metrics_message(await plane.server_states(), plane))
        except Exception:
            log.exception("mesh metrics failed")


def _metrics_message(servers: dict[str, list[dict]], plane: ControlPlane) -> dict:
    """Shape the mesh's state for the page: number tables for the gauges, the raw state for the widgets."""
    breakers = {}
    for caller, states in servers.items():
        for state in states:
            if "server" not in state:
                continue
            status = state["status"]
            breakers[f"{caller.rsplit('-', 1)[0]} → {state['server']}"] = {
                "in rotation": status.startswith("UP") or status == "no check",
                "ejected": status.startswith("DOWN"),
                "maintenance": status.startswith("MAINT"),
                "times ejected": state["down_transitions"],
            }
    edges = {
        f"{edge['from']} → {edge['to']}": {
            "requests": edge["requests"],
            "errors": edge["errors"],
            "retries": edge["retries"],
            "p99 ms": edge["p99_ms"] or 0,
            "mTLS": edge["mtls"],
        }
        for edge in plane.edge_metrics()
    }
    return {
        "breakers": breakers,
        "mesh edges": edges,
        "mesh": {
            "policy version": plane.version,
            "sidecars": len(plane.proxies),
            "config lines": plane.config_lines(),
        },
        # Not numbers, so the gauges skip them: the breaker widget and the graph read them.
        "mesh_state": {"servers": servers, "edges": plane.edge_metrics()},
    }


async def main(ctx: ServiceContext) -> None:
    sink = SpanSink()
    plane = ControlPlane(ctx.plan, sink.put)  # type: ignore[attr-defined]
    await plane.start()
    app = untraced_application()
    add_health_route(app)
    app[PLANE_KEY] = plane
    app.router.add_get("/mesh", topology)
    app.router.add_get("/mesh/state", state)
    app.router.add_get("/mesh/totals", totals)
    app.router.add_get("/mesh/config/{sidecar}", config)
    app.router.add_post("/mesh/policy", apply_policy)
    app.router.add_post("/mesh/policy/preview", preview_policy)
    app.router.add_post("/mesh/rotate", rotate)
    app.router.add_post("/mesh/enabled", enabled)
    sink.serve(app, "/mesh/spans")
    loops = [
        asyncio.ensure_future(_endpoints(plane)),
        asyncio.ensure_future(_metrics(ctx, plane)),
        asyncio.ensure_future(
            serve_commands(
                ctx.redis_url, ctx.sandbox_id, ctx.name, lambda command: _command(plane, command)
            )
        ),
    ]
    try:
        await serve_http(ctx, app)
    finally:
        for task in loops:
            task.cancel()
        await plane.stop()
