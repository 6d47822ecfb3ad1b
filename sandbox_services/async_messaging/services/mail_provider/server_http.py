"""HTTP front of the mail provider: POST /send (Idempotency-Key honoured), GET /stats."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext
from sandbox_services.runtime.web import json_body

from .backend import MailBackend
from .interface import SendRequest
from .store import MailStore

# The provider's store in the sandbox's directory; tests read it as the provider's own count.
STORE_FILE = "mail-provider.sqlite3"


async def send(request: web.Request) -> web.Response:
    data = await json_body(request)
    recipient, message_id = data.get("to"), data.get("message_id")
    if not isinstance(recipient, str) or not isinstance(message_id, str) or not message_id:
        return web.json_response({"detail": "to and message_id: must be strings"}, status=400)
    key = request.headers.get("Idempotency-Key") or None
    backend: MailBackend = request.app["backend"]
    receipt = await asyncio.to_thread(backend.send, SendRequest(recipient, message_id, key))
    return web.json_response(
        {"send_id": receipt.send_id, "replayed": receipt.replayed},
        status=200 if receipt.replayed else 201,
    )


async def stats(request: web.Request) -> web.Response:
    backend: MailBackend = request.app["backend"]
    return web.json_response(await asyncio.to_thread(backend.store.stats))


async def main(ctx: ServiceContext) -> None:
    """Serve the mail provider until cancelled."""
    store = MailStore(ctx.workdir / STORE_FILE)
    app = http_app(ctx)
    app["backend"] = MailBackend(store)
    app.add_routes([web.post("/send", send), web.get("/stats", stats)])
    try:
        await serve_http(ctx, app)
    finally:
        store.close()
