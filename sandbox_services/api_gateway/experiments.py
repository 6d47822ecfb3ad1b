"""The lesson's experiments: each drives the sandbox and returns measured figures.

Every function here is ``async def f(ctx, params) -> dict``: ``drive_*``
measures and ``reports`` writes the headline, table and notes. Parameters
arrive validated against ``knobs.PARAMETERS``. Each experiment leaves the
gateway as it found it (running, no delay, the default policy) even when it
fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

from opentelemetry import trace

from . import loadgen, reports
from .knobs import DEFAULT_POLICY
from .scenario import (
    EdgeClient,
    bearer,
    call,
    edge_port,
    forged_token,
    gateway_client,
    port_of,
    rate_limited_policy,
    replace_lines,
    restore,
    service_counters,
    token,
)
from .wan import WanLink, difference

_tracer = trace.get_tracer("sandbox_services.api_gateway.experiments")


@contextlib.asynccontextmanager
async def _restoring(ctx):
    gateway = gateway_client(ctx)
    try:
        yield gateway
    finally:
        await restore(ctx, gateway)


@contextlib.asynccontextmanager
async def _client_over_link(port: int, rtt_ms: int, *, connections: int = 1):
    link = WanLink(port, rtt_ms)
    await link.start()
    client = EdgeClient(link.port, connections=connections)
    try:
        yield link, client
    finally:
        await client.close()
        await link.close()


async def _traced(name: str, coroutine_factory) -> tuple[str, dict]:
    """Run one client call inside a span of its own; return its trace id and the call's result."""
    with _tracer.start_as_current_span(name, kind=trace.SpanKind.INTERNAL) as span:
        result = await coroutine_factory()
        return format(span.get_span_context().trace_id, "032x"), result


async def _gateway_spans(
    gateway, trace_ids: list[str], at_least: int, timeout_s: float = 3.0
) -> list[dict]:
    """Wait for the gateway's spans of these traces (its log lines reach it within milliseconds)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await call(gateway.spans, trace_ids)
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


# --- 1. routing ---------------------------------------------------------------------


async def drive_routing(ctx, params: dict) -> dict:
    """Call each route through the one entry point; read which back end and version answered."""
    gateway = gateway_client(ctx)
    port = await edge_port(gateway)
    token_value = await token(ctx, sub="alice", scope="orders:read")
    headers = bearer(token_value)
    calls: list[dict] = []
    async with _client_over_link(port, params["wan_rtt_ms"]) as (link, client):
        for index in range(params["calls"]):
            order_id = 100 + index
            plan = [
                (
                    "GET /catalog/items",
                    "catalog (REST)",
                    lambda: client.get("/catalog/items?limit=3", headers),
                ),
                (
                    f"GET /orders/{order_id}",
                    "bff, then orders over gRPC",
                    lambda order_id=order_id: client.get(f"/orders/{order_id}", headers),
                ),
                (
                    "gRPC GetOrder",
                    "orders (gRPC, through the gateway)",
                    lambda order_id=order_id: client.get_order_grpc(
                        order_id, token_value=token_value
                    ),
                ),
                (
                    "gRPC GetOrder, x-canary: v2",
                    "orders-v2 (the canary)",
                    lambda order_id=order_id: client.get_order_grpc(
                        order_id, token_value=token_value, canary=True
                    ),
                ),
            ]
            for label, expected, factory in plan:
                trace_id, result = await _traced(f"client: {label}", factory)
                calls.append({"call": label, "expected": expected, "trace_id": trace_id, **result})
        link_figures = link.counters.snapshot()
    spans = await _gateway_spans(gateway, [c["trace_id"] for c in calls], len(calls))
    by_trace = {span["trace_id"]: span for span in spans}
    for item in calls:
        span = by_trace.get(item["trace_id"])
        item["gateway_span"] = (
            {
                "route": span["attributes"].get("gateway.route"),
                "backend": span["attributes"].get("haproxy.server"),
                "status": span["attributes"].get("http.response.status_code"),
                "gateway_ms": round((span["end_ns"] - span["start_ns"]) / 1e6, 3),
                "timers_ms": span["attributes"].get("haproxy.timers_ms"),
            }
            if span
            else None
        )
    return {"params": params, "calls": calls, "link": link_figures}


async def routing(ctx, params: dict) -> dict:
    return reports.routing(await drive_routing(ctx, params))


# --- 2. authentication at the edge ------------------------------------------------------


async def drive_edge_auth(ctx, params: dict) -> dict:
    """Send each kind of token; count what reached the catalog by the catalog's own counter."""
    gateway = gateway_client(ctx)
    port = await edge_port(gateway)
    valid = await token(ctx, sub="alice", scope="orders:read")
    kinds = {
        "valid": valid,
        "expired": await token(ctx, sub="alice", ttl_s=-60),
        "wrong audience": await token(ctx, sub="alice", aud="billing-api"),
        "forged signature": forged_token("alice"),
        "missing": None,
    }
    cases = []
    async with _client_over_link(port, params["wan_rtt_ms"]) as (_, client):
        for kind, value in kinds.items():
            before = (await service_counters(ctx, "catalog"))["requests"]
            answers = []
            for _ in range(params["calls"]):
                # The client also claims to be someone else: only the gateway may say who calls.
                answers.append(
                    await client.get(
                        "/catalog/items?limit=1", bearer(value, **{"x-user-id": "mallory"})
                    )
                )
            after = (await service_counters(ctx, "catalog"))["requests"]
            cases.append(
                {
                    "token": kind,
                    "statuses": sorted({a["status"] for a in answers}),
                    "error": (answers[0].get("body") or {}).get("error")
                    if isinstance(answers[0].get("body"), dict)
                    else None,
                    "www_authenticate": answers[0].get("headers", {}).get("WWW-Authenticate"),
                    "sent": len(answers),
                    "reached_catalog": after - before,
                    "seen_by_catalog": (answers[0].get("body") or {}).get("seen")
                    if answers[0]["status"] == 200
                    else None,
                }
            )
        # A valid token without the scope the orders route requires: authenticated, not authorized.
        no_scope = await token(ctx, sub="bob", scope="catalog:read")
        scoped = await client.get("/orders/7", bearer(no_scope))
        cases.append(
            {
                "token": "valid, lacks orders:read (GET /orders/7)",
                "statuses": [scoped["status"]],
                "error": (scoped.get("body") or {}).get("error")
                if isinstance(scoped.get("body"), dict)
                else None,
                "www_authenticate": scoped.get("headers", {}).get("WWW-Authenticate"),
                "sent": 1,
                "reached_catalog": None,
                "seen_by_catalog": None,
            }
        )
    # Around the gateway: the catalog's own port, a forged identity header and no token.
    direct = EdgeClient(port_of(ctx.address("catalog")))
    try:
        around = await direct.get("/catalog/items?limit=1", {"x-user-id": "admin"})
    finally:
        await direct.close()
    return {"params": params, "cases": cases, "around": around}


async def edge_auth(ctx, params: dict) -> dict:
    return reports.edge_auth(await drive_edge_auth(ctx, params))


# --- 3. rate limiting ---------------------------------------------------------------------


async def drive_rate_limiting(ctx, params: dict) -> dict:
    """Two API keys, one over its limit; record every answer's time and status."""
    async with _restoring(ctx) as gateway:
        policy = rate_limited_policy(params["limit"], params["period_ms"])
        applied = await call(gateway.apply, policy)
        port = await edge_port(gateway)
        token_value = await token(ctx, sub="alice")
        clients = {"greedy": params["greedy_rate"], "polite": params["polite_rate"]}
        ctx.set_sample_ratio(0.05)  # a load: trace a sample of it, and say so
        try:
            answers = await loadgen.fixed_rate_clients(
                port,
                "/catalog/items?limit=1",
                {name: bearer(token_value, **{"x-api-key": name}) for name in clients},
                clients,
                params["duration_s"],
            )
        finally:
            ctx.set_sample_ratio(1.0)
        table = await call(gateway.table, "per-key")
        period_s = params["period_ms"] / 1000
        # Probes count too: at 40% of the limit's rate they cannot hold the key over it.
        probe_every_s = max(0.05, 2.5 * period_s / params["limit"])
        recovery_ms = await _until_accepted(
            port, bearer(token_value, **{"x-api-key": "greedy"}), probe_every_s, 2 * period_s + 2
        )
    return {
        "params": params,
        "answers": answers,
        "policy": policy,
        "diff": applied["diff"],
        "table": table,
        "recovery_ms": recovery_ms,
        "probe_every_ms": round(probe_every_s * 1000),
    }


async def _until_accepted(
    port: int, headers: dict, every_s: float, timeout_s: float
) -> float | None:
    """Return how long after it fell silent a key was served again, probing every ``every_s``."""
    client = EdgeClient(port)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            await asyncio.sleep(every_s)
            if (await client.get("/catalog/items?limit=1", headers))["status"] == 200:
                return round((time.monotonic() - started) * 1000)
    finally:
        await client.close()
    return None


async def rate_limiting(ctx, params: dict) -> dict:
    return reports.rate_limiting(await drive_rate_limiting(ctx, params))


# --- 4. aggregation -------------------------------------------------------------------------


async def _three_calls_in_turn(client: EdgeClient, headers: dict) -> list[dict]:
    return [
        await client.get("/catalog/items/sku-001", headers),
        await client.get("/orders/?limit=3", headers),
        await client.get("/reviews/sku-001", headers),
    ]


async def _three_calls_at_once(client: EdgeClient, headers: dict) -> list[dict]:
    return list(
        await asyncio.gather(
            client.get("/catalog/items/sku-001", headers),
            client.get("/orders/?limit=3", headers),
            client.get("/reviews/sku-001", headers),
        )
    )


async def _measure_way(link: WanLink, way, repeats: int) -> dict:
    """Run one way ``repeats`` times on warm connections; return the median and the link's counts."""
    await way()  # warm: connections open, as a real app's would be
    before = link.counters.snapshot()
    times, answers = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        answers = await way()
        times.append((time.perf_counter() - started) * 1000)
    counted = difference(link.counters.snapshot(), before)
    return {
        "median_ms": round(statistics.median(times), 1),
        "round_trips": counted["round_trips"] / repeats,
        "requests": counted["requests"] / repeats,
        "new_connections": counted["connections"] / repeats,
        "bytes_up": counted["bytes_up"] // repeats,
        "bytes_down": counted["bytes_down"] // repeats,
        "statuses": [
            answer["status"] for answer in (answers if isinstance(answers, list) else [answers])
        ],
        "last": answers,
    }


async def drive_aggregation(ctx, params: dict) -> dict:
    """Three client calls against one BFF call over the link; then with one back end slow."""
    gateway = gateway_client(ctx)
    port = await edge_port(gateway)
    headers = bearer(await token(ctx, sub="alice", scope="orders:read"))
    deadline = params["deadline_ms"]
    home = f"/bff/home?sku=sku-001&deadline_ms={deadline}"
    rtt, repeats = params["wan_rtt_ms"], params["repeats"]
    parts: dict[str, dict] = {}
    async with _client_over_link(port, rtt) as (link, client):
        parts["three calls, one after another"] = await _measure_way(
            link, lambda: _three_calls_in_turn(client, headers), repeats
        )
        parts["one BFF call"] = await _measure_way(link, lambda: client.get(home, headers), repeats)
    async with _client_over_link(port, rtt, connections=3) as (link, client):
        parts["three calls at once (3 connections)"] = await _measure_way(
            link, lambda: _three_calls_at_once(client, headers), repeats
        )
    slow: dict[str, dict] = {}
    await ctx.control("delay", "reviews", delay_ms=params["slow_ms"])
    try:
        async with _client_over_link(port, rtt, connections=3) as (link, client):
            slow["three calls at once: waits for the slowest"] = await _measure_way(
                link, lambda: _three_calls_at_once(client, headers), 1
            )
            slow["one BFF call: answers by its deadline"] = await _measure_way(
                link, lambda: client.get(home, headers), 1
            )
    finally:
        await ctx.control("clear", "reviews")
    return {"params": params, "parts": parts, "slow": slow}


async def aggregation(ctx, params: dict) -> dict:
    return reports.aggregation(await drive_aggregation(ctx, params))


# --- 5. the gateway as a single point --------------------------------------------------------


async def _every_route(client: EdgeClient, token_value: str) -> dict[str, dict]:
    headers = bearer(token_value)
    return {
        "catalog": await client.get("/catalog/items?limit=1", headers),
        "orders (BFF)": await client.get("/orders/5", headers),
        "reviews": await client.get("/reviews/sku-001"),
        "orders (gRPC)": await client.get_order_grpc(5, token_value=token_value),
    }


async def _until_every_route_answers(
    client: EdgeClient, token_value: str, first: dict[str, dict], timeout_s: float = 5.0
) -> dict[str, float | None]:
    """Return, per route, how long after the restart it answered again (a client's reconnect backoff shows here)."""
    started = time.monotonic()
    recovered: dict[str, float | None] = {
        route: 0.0 for route, answer in first.items() if answer["status"] in (200, "OK")
    }
    while len(recovered) < len(first) and time.monotonic() - started < timeout_s:
        await asyncio.sleep(0.05)
        for route, answer in (await _every_route(client, token_value)).items():
            if route not in recovered and answer["status"] in (200, "OK"):
                recovered[route] = round((time.monotonic() - started) * 1000, 1)
    return {route: recovered.get(route) for route in first}


async def drive_single_point(ctx, params: dict) -> dict:
    """Measure the gateway's added latency; then slow it and stop it and call every route."""
    async with _restoring(ctx) as gateway:
        # Lift the rate limit for the load part (the table still counts every request).
        await call(gateway.apply, rate_limited_policy(100_000, 1000))
        port = await edge_port(gateway)
        token_value = await token(ctx, sub="alice", scope="orders:read")
        catalog_port = port_of(ctx.address("catalog"))
        reviews_port = port_of(ctx.address("reviews"))
        overhead = await ctx.fork(
            loadgen.interleaved,
            {
                "catalog direct": (catalog_port, {}),
                "catalog via gateway (JWT + rate limit)": (
                    port,
                    {"Authorization": f"Bearer {token_value}"},
                ),
                "reviews direct": (reviews_port, {}),
                "reviews via gateway (no auth)": (port, {}),
            },
            {
                "catalog direct": "/catalog/items/sku-001",
                "catalog via gateway (JWT + rate limit)": "/catalog/items/sku-001",
                "reviews direct": "/reviews/sku-001",
                "reviews via gateway (no auth)": "/reviews/sku-001",
            },
            params["requests"],
        )
        client = EdgeClient(port)
        try:
            healthy = await _every_route(client, token_value)
            await call(gateway.set_delay, params["gateway_delay_ms"])
            slowed = await _every_route(client, token_value)
            await call(gateway.set_delay, 0)
            await call(gateway.stop)
            stopped_at = time.monotonic()
            stopped = await _every_route(client, token_value)
            bypass = EdgeClient(catalog_port)
            try:
                direct = await bypass.get("/catalog/items?limit=1")
            finally:
                await bypass.close()
            await asyncio.sleep(max(0.0, params["stop_s"] - (time.monotonic() - stopped_at)))
            restarted = await call(gateway.start)
            after = await _every_route(client, token_value)
            recovery = await _until_every_route_answers(client, token_value, after)
        finally:
            await client.close()
    return {
        "params": params,
        "overhead": overhead,
        "healthy": healthy,
        "slowed": slowed,
        "stopped": stopped,
        "direct_while_stopped": direct,
        "restart_ms": restarted["start_ms"],
        "after": after,
        "recovery_ms": recovery,
    }


async def single_point(ctx, params: dict) -> dict:
    return reports.single_point(await drive_single_point(ctx, params))


# --- 6. a route change under traffic --------------------------------------------------------------

CANARY_FOR_EVERYONE = (
    "  - name: orders-grpc-canary\n    match:\n      pathPrefix: /labapi.gateway.v1.Orders/\n"
    "      headers: {x-canary: v2}\n",
    "  - name: orders-grpc-canary\n    match:\n      pathPrefix: /labapi.gateway.v1.Orders/\n",
)


def route_changes(count: int) -> list[str]:
    """Return ``count`` policies that change routes: catalog's timeout, a new route, the canary for all."""
    variants = [
        replace_lines(DEFAULT_POLICY, {"    timeout: 2s\n": "    timeout: 500ms\n"}),
        replace_lines(
            DEFAULT_POLICY,
            {
                "  - name: reviews\n": "  - name: items\n    match: {pathPrefix: /items/}\n    backend: catalog\n"
                "    auth: none\n  - name: reviews\n"
            },
        ),
        replace_lines(DEFAULT_POLICY, {CANARY_FOR_EVERYONE[0]: CANARY_FOR_EVERYONE[1]}),
        DEFAULT_POLICY,
    ]
    return [variants[index % len(variants)] for index in range(count)]


async def drive_live_policy(ctx, params: dict) -> dict:
    """Change the routes several times while traffic crosses the gateway; count failed requests."""
    async with _restoring(ctx) as gateway:
        await call(gateway.apply, rate_limited_policy(100_000, 1000))
        port = await edge_port(gateway)
        token_value = await token(ctx, sub="alice", scope="orders:read")
        policies = route_changes(params["changes"])
        duration_s = 1.0 + 0.6 * len(policies)
        ctx.set_sample_ratio(0.05)
        load = asyncio.ensure_future(
            loadgen.fixed_rate_clients(
                port,
                "/catalog/items?limit=1",
                {"traffic": bearer(token_value)},
                {"traffic": params["rate"]},
                duration_s,
            )
        )
        applied = []
        try:
            await asyncio.sleep(0.5)
            for policy in policies:
                applied.append(await call(gateway.apply, rate_limited_policy_of(policy)))
                await asyncio.sleep(0.5)
            answers = await load
        finally:
            ctx.set_sample_ratio(1.0)
            if not load.done():
                load.cancel()
    return {"params": params, "answers": answers, "applied": applied}


def rate_limited_policy_of(policy: str) -> str:
    """Return a policy with the limit lifted, so the traffic measures reloads, not the limiter."""
    return policy.replace("    requests: 50\n", "    requests: 100000\n")


async def live_policy(ctx, params: dict) -> dict:
    return reports.live_policy(await drive_live_policy(ctx, params))
