"""Small aiohttp helpers shared by the HTTP sides of the messaging lessons' services."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox_services.runtime.spec import Faults, InjectedFault

HEALTH_PATH = "/healthz"


async def json_body(request: web.Request) -> dict:
    """Return the request's JSON object, or raise HTTPBadRequest saying what is wrong."""
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"detail": "body: must be a JSON object"}', content_type="application/json"
        )
    return data


def fault_middleware(faults: Faults) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return middleware applying the learner's delay and error rate to every route but /healthz.

    For services whose work has no other place to apply them; the consumers apply
    theirs in the backend, on both the HTTP and the queue path, and must not use this.
    """

    @web.middleware
    async def apply_faults(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != HEALTH_PATH:
            try:
                await faults.apply()
            except InjectedFault as fault:
                # JSON with "detail", as the services' clients expect of every error; raised
                # rather than returned so the traced server marks its span as an error.
                raise web.HTTPServiceUnavailable(
                    text=json.dumps({"detail": str(fault)}), content_type="application/json"
                ) from None
        return await handler(request)

    return apply_faults
