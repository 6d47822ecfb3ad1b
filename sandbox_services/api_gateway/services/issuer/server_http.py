"""Serve the issuer: GET /.well-known/jwks.json (public keys), POST /token (a signed JWT).

The same JWKS is also written to a file in the sandbox's directory
(``jwks_path``), where the gateway's process loads it: HAProxy 2.6 takes keys
from files only, and reading the file spares the gateway's start a wait for
this port. It stands in for the JWKS URL a gateway's control plane polls.
A restarted issuer has a new key and publishes it again; the gateway notices
and reloads.

POST /token takes JSON ``{"sub", "aud", "scope", "ttl_s"}``; every field has a
default from the lesson's knobs. A real token endpoint would authenticate the
client first; this one signs for whoever asks, because the lesson is about
what the gateway does with a token, not about how one is obtained.
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from sandbox_services.runtime.serve import http_app, serve_http
from sandbox_services.runtime.spec import ServiceContext

from .backend import Issuer
from .client import jwks_path

ISSUER_KEY = web.AppKey("issuer", Issuer)
AUDIENCE_KEY = web.AppKey("audience", str)


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[ISSUER_KEY].jwks())


async def token(request: web.Request) -> web.Response:
    issuer = request.app[ISSUER_KEY]
    try:
        body = await request.json() if request.can_read_body else {}
        subject = str(body.get("sub", "alice"))[:64]
        audience = str(body.get("aud", request.app[AUDIENCE_KEY]))[:64]
        scope = str(body.get("scope", ""))[:200]
        ttl_s = int(body.get("ttl_s", 300))
    except (ValueError, TypeError, AttributeError):
        return web.json_response(
            {"detail": "sub, aud, scope: strings; ttl_s: a whole number"}, status=400
        )
    if not -86_400 <= ttl_s <= 86_400:
        return web.json_response({"detail": "ttl_s: between -86400 and 86400"}, status=400)
    signed = issuer.token(subject=subject, audience=audience, scope=scope, ttl_s=ttl_s)
    return web.json_response({"access_token": signed, "token_type": "Bearer", "expires_in": ttl_s})


def publish(issuer: Issuer, workdir: Path) -> Path:
    """Write the JWKS document atomically (a reader never sees half of it)."""
    path = jwks_path(workdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(issuer.jwks()))
    temporary.replace(path)
    return path


async def main(ctx: ServiceContext) -> None:
    app = http_app(ctx)
    app[ISSUER_KEY] = Issuer(str(ctx.settings["issuer"]))
    # Published before serving: the gateway waits for this file, not for this port.
    publish(app[ISSUER_KEY], ctx.workdir)
    app[AUDIENCE_KEY] = str(ctx.settings["audience"])
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_post("/token", token)
    await serve_http(ctx, app)
