"""What the experiments share: reach the gateway and the issuer, make tokens, call as a client would.

The learner's client is the experiment's process. Its calls are traced
(aiohttp's and gRPC's instrumentation, so each one starts the trace the
gateway's span and the services' spans join), and the ones that model a
real client go through the simulated WAN link (``wan.py``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any

import aiohttp
import grpc
import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec

from .knobs import AUDIENCE, DEFAULT_POLICY, ISSUER
from .services.gateway.client import GatewayClient
from .services.issuer.client import issue_token
from .services.orders.client import OrdersGrpcClient

GATEWAY = "gateway"


def gateway_client(ctx) -> GatewayClient:
    return GatewayClient(ctx.address(GATEWAY))


async def call(function, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call (the gateway's API, the issuer, a service's admin route) off the loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


async def edge_port(gateway: GatewayClient) -> int:
    return port_of((await call(gateway.describe))["listen"])


async def token(ctx, **claims: Any) -> str:
    """Return a token the sandbox's issuer signed (sub, aud, scope, ttl_s)."""
    return await call(issue_token, ctx.address("issuer"), **claims)


def forged_token(subject: str = "alice") -> str:
    """Return a token with the right claims signed by a key the issuer never had."""
    now = int(time.time())
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "scope": "orders:read",
        "iat": now,
        "exp": now + 300,
    }
    return pyjwt.encode(claims, key, algorithm="ES256", headers={"kid": "forged"})


def _admin(port: int, method: str, path: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


async def service_counters(ctx, service: str) -> dict:
    """Return a service's own request counters, read on its own port (not through the gateway)."""
    return await call(_admin, port_of(ctx.address(service)), "GET", "/admin/stats")


async def restore(ctx, gateway: GatewayClient) -> None:
    """Put the gateway back as it started: running, no delay, the default policy."""
    described = await call(gateway.describe)
    if not described["running"]:
        await call(gateway.start)
    if described["delay_ms"]:
        await call(gateway.set_delay, 0)
    await call(gateway.apply, DEFAULT_POLICY)


def replace_lines(text: str, replacements: dict[str, str]) -> str:
    """Return ``text`` with each old snippet replaced by its new one; raise if one is absent."""
    for old, new in replacements.items():
        if old not in text:
            raise ValueError(f"policy snippet not found: {old!r}")
        text = text.replace(old, new)
    return text


def rate_limited_policy(limit: int, period_ms: int) -> str:
    return replace_lines(
        DEFAULT_POLICY,
        {
            "    requests: 50\n    period: 1s\n": f"    requests: {limit}\n    period: {period_ms}ms\n"
        },
    )


class EdgeClient:
    """The learner's client: HTTP and gRPC calls to one address (the link, or the gateway itself)."""

    def __init__(self, port: int, *, connections: int = 1) -> None:
        self.port = port
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections, keepalive_timeout=60, force_close=False
            ),
            timeout=aiohttp.ClientTimeout(total=20),
        )
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.orders = OrdersGrpcClient(self.channel)

    async def get(self, path: str, headers: dict | None = None) -> dict:
        """GET a path; return status, a JSON body (or None), headers of interest, elapsed ms."""
        started = time.perf_counter()
        try:
            async with self.session.get(
                f"http://127.0.0.1:{self.port}{path}", headers=headers or {}
            ) as response:
                raw = await response.read()
                status = response.status
                interesting = {
                    name: response.headers[name]
                    for name in ("Retry-After", "WWW-Authenticate", "cache-control")
                    if name in response.headers
                }
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            return {
                "status": 0,
                "error": f"{type(error).__name__}: {error}"[:200],
                "ms": _ms(started),
            }
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")[:200]
        return {
            "status": status,
            "body": body,
            "headers": interesting,
            "ms": _ms(started),
            "bytes": len(raw),
        }

    async def get_order_grpc(
        self, order_id: int, *, token_value: str, canary: bool = False
    ) -> dict:
        metadata = [("authorization", f"Bearer {token_value}")]
        if canary:
            metadata.append(("x-canary", "v2"))
        started = time.perf_counter()
        try:
            order = await self.orders.get_order(order_id, metadata=tuple(metadata), timeout_s=10)
        except grpc.aio.AioRpcError as error:
            return {"status": error.code().name, "error": error.details(), "ms": _ms(started)}
        return {"status": "OK", "body": order, "ms": _ms(started)}

    async def close(self) -> None:
        await self.session.close()
        await self.channel.close()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def bearer(token_value: str | None, **extra: str) -> dict:
    headers = dict(extra)
    if token_value:
        headers["Authorization"] = f"Bearer {token_value}"
    return headers
