"""Serve the frontend over HTTP: GET /checkout calls the backend for a price.

The mesh is invisible from here: the backend's address comes from
``ctx.addresses("backend")`` on every call, which is the sidecar's outbound
listener when the mesh is on and the replicas themselves when it is off.
Retries, timeouts, TLS and balancing are not in this file, and that is the
point.

What the mesh cannot do for the app: carry the trace context from the
request it received to the request it sends. The OpenTelemetry
instrumentation does it here; ``forward=0`` shows an app that does not.
"""

from __future__ import annotations

import random
from dataclasses import asdict

import aiohttp
from aiohttp import web
from opentelemetry import context as otel_context

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

from ..backend.client import PriceClient
from ..backend.interface import BackendUnavailable
from .interface import Checkout

SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
CTX_KEY = web.AppKey("ctx", object)


async def checkout(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    item = request.query.get("item", "book")
    forward = request.query.get("forward", "1") != "0"
    # With the mesh on this list is one address, the sidecar; off, every replica.
    client = PriceClient(request.app[SESSION_KEY], random.choice(ctx.addresses("backend")))
    token = None if forward else otel_context.attach(otel_context.Context())
    try:
        quote = await client.quote(item)
    except BackendUnavailable as error:
        return web.json_response(
            {"detail": str(error)}, status=502 if error.status < 500 else error.status
        )
    except aiohttp.ClientError as error:
        return web.json_response({"detail": f"backend unreachable: {error}"}, status=502)
    finally:
        if token is not None:
            otel_context.detach(token)
    result = Checkout(item, quote.price_cents + 499, quote.replica)
    return web.json_response(asdict(result))


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
    app[SESSION_KEY] = session
    app[CTX_KEY] = ctx
    app.router.add_get("/checkout", checkout)
    try:
        await serve_http(ctx, app)
    finally:
        await session.close()
