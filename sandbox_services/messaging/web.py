"""Small aiohttp helpers shared by the HTTP sides of the messaging lessons' services."""

from __future__ import annotations

from aiohttp import web


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
