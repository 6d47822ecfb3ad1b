"""The consumer's request/reply side: POST /handle (sync mode), stats and settings."""

from __future__ import annotations

from aiohttp import web

from sandbox_services.runtime.web import json_body

from sandbox_services.async_messaging import knobs
from sandbox_services.runtime.spec import InjectedFault

from .backend import ConsumerBackend
from .interface import PoisonMessage


async def handle(request: web.Request) -> web.Response:
    backend: ConsumerBackend = request.app["backend"]
    order = await json_body(request)
    message_id = request.headers.get("Idempotency-Key") or order.get("order_id", "")
    try:
        result = await backend.handle(order, message_id=message_id)
    except PoisonMessage as error:
        return web.json_response({"detail": str(error)}, status=422)
    except InjectedFault as error:
        return web.json_response({"detail": str(error)}, status=500)
    return web.json_response({"message_id": result.message_id, "effect": result.effect})


async def stats(request: web.Request) -> web.Response:
    backend: ConsumerBackend = request.app["backend"]
    loop_stats = request.app["loop_stats"]
    # Reconnects are this replica's, since it started: how often it lost the broker.
    # A new prefetch reaches the subscription a moment later; this says when it has.
    return web.json_response(
        {
            **await backend.stats(),
            "reconnects": loop_stats.reconnects,
            "prefetch_applied": loop_stats.prefetch,
        }
    )


async def configure(request: web.Request) -> web.Response:
    """Change this consumer's settings (stored, so they survive a restart)."""
    backend: ConsumerBackend = request.app["backend"]
    data = await json_body(request)
    values: dict = {}
    if "idempotent" in data:
        if not isinstance(data["idempotent"], bool):
            return web.json_response({"detail": "idempotent: must be true or false"}, status=400)
        values["idempotent"] = data["idempotent"]
    if "prefetch" in data:
        low, high = knobs.PREFETCH_RANGE
        if not isinstance(data["prefetch"], int) or not low <= data["prefetch"] <= high:
            return web.json_response({"detail": f"prefetch: must be in {low}..{high}"}, status=400)
        values["prefetch"] = data["prefetch"]
    if "work_ms" in data:
        work = data["work_ms"]
        if work is not None and (not isinstance(work, (int, float)) or not 0 <= work <= 1000):
            return web.json_response({"detail": "work_ms: must be in 0..1000 or null"}, status=400)
        values["work_ms"] = work
    if "provider" in data:
        if data["provider"] not in (None, "plain", "keyed"):
            return web.json_response(
                {"detail": "provider: must be null, plain or keyed"}, status=400
            )
        values["provider"] = data["provider"]
    settings = backend.store.configure(**values)
    if "prefetch" in values:
        request.app["wake_consumer"]()  # resubscribe now, not at the consumer's next turn
    return web.json_response(vars(settings))


async def reset(request: web.Request) -> web.Response:
    request.app["backend"].store.reset()
    return web.json_response({"ok": True})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "subscribed": request.app["subscribed"].is_set()})


def make_app(backend: ConsumerBackend, subscribed, loop_stats, wake_consumer) -> web.Application:
    app = web.Application()
    app["loop_stats"] = loop_stats
    app["wake_consumer"] = wake_consumer
    app["backend"] = backend
    app["subscribed"] = subscribed
    app.add_routes(
        [
            web.post("/handle", handle),
            web.get("/stats", stats),
            web.put("/config", configure),
            web.post("/reset", reset),
            web.get("/healthz", healthz),
        ]
    )
    return app
