"""Drive the experiments about traffic: balancing, outlier ejection, retries, faults.

Each ``drive_*`` runs the sandbox and returns measured figures; ``reports``
writes them up. Each leaves the sandbox as it found it.
"""

from __future__ import annotations

import asyncio
import time

from . import loadgen
from sandbox_services.runtime.sample_stats import summary
from .scenario import (
    behave,
    call,
    client_outbound,
    destination_rule,
    documents,
    peer_authentication,
    replica_counters,
    reset_backends,
    restoring,
    scale_backend,
    virtual_service,
)


def _split(rows: list[list]) -> dict:
    latencies = [row[0] for row in rows if row[1] == 200]
    by_replica: dict[str, int] = {}
    for row in rows:
        if row[1] == 200 and row[2] is not None:
            by_replica[str(row[2])] = by_replica.get(str(row[2]), 0) + 1
    return {
        "latency_ms": summary(latencies),
        "by_replica_seen_by_caller": by_replica,
        "failed": sum(1 for row in rows if row[1] != 200),
    }


def _sessions_by_server(state: dict, sidecar_name: str, backend: str) -> dict[str, int]:
    return {
        item["server"]: item["total_sessions"]
        for item in state["servers"].get(sidecar_name, [])
        if item.get("backend") == backend
    }


async def drive_load_balancing(ctx, params: dict) -> dict:
    """Send the same load under ROUND_ROBIN and LEAST_REQUEST with one replica slow; count the split."""
    async with restoring(ctx) as plane:
        replicas = await scale_backend(ctx, 3)
        topology = await call(plane.topology)
        port = client_outbound(topology, "backend")
        runs = {}
        for balancer in ("ROUND_ROBIN", "LEAST_REQUEST"):
            policy = documents(peer_authentication("STRICT"), destination_rule("backend", balancer))
            await call(plane.apply, policy)
            await behave(topology, 2, delay_ms=params["slow_ms"])
            # Untimed: the new sidecar workers open their TLS connections first.
            await ctx.fork(
                loadgen.closed_loop, port, "/quote?item=warmup", 30, params["concurrency"], 0
            )
            await reset_backends(topology, replicas)
            await behave(topology, 2, delay_ms=params["slow_ms"])
            before = _sessions_by_server(await call(plane.state), "client-0", "backend")
            measured = await ctx.fork(
                loadgen.closed_loop,
                port,
                "/quote?item=lb",
                params["requests"],
                params["concurrency"],
                0,
            )
            after = _sessions_by_server(await call(plane.state), "client-0", "backend")
            counters = await replica_counters(topology, replicas)
            runs[balancer] = {
                **_split(measured["results"]),
                "elapsed_s": measured["elapsed_s"],
                "by_replica_own_count": {str(r): counters[r]["received"] for r in replicas},
                "by_server_haproxy": {
                    name: after.get(name, 0) - before.get(name, 0) for name in after
                },
                "max_in_flight_on_slow": counters[2]["max_in_flight"],
                "policy": policy,
            }
        return {"params": params, "runs": runs}


async def drive_outlier_detection(ctx, params: dict) -> dict:
    """Fail one replica for a while; follow its state in HAProxy while steady traffic flows."""
    async with restoring(ctx) as plane:
        replicas = await scale_backend(ctx, 3)
        topology = await call(plane.topology)
        base_ms = int(params["base_ejection_s"] * 1000)
        outlier = (
            f"{{consecutive5xxErrors: {params['consecutive_errors']}, interval: 1s,"
            f" baseEjectionTime: {base_ms}ms, maxEjectionPercent: 100}}"
        )
        policy = documents(
            peer_authentication("STRICT"),
            destination_rule("backend", "ROUND_ROBIN", outlier),
            virtual_service("backend", retries="{attempts: 0}"),
        )
        applied = await call(plane.apply, policy)
        await reset_backends(topology, replicas)
        await asyncio.sleep(0.3)  # first health checks pass
        rate = 100
        lead_s = 0.5
        total_s = lead_s + params["failing_s"] + params["base_ejection_s"] + 1.5
        started = time.monotonic()
        load = asyncio.ensure_future(
            ctx.fork(
                loadgen.fixed_rate,
                client_outbound(topology, "backend"),
                "/quote?item=od",
                rate,
                total_s,
                20,
            )
        )
        timeline: list[list] = []
        healed = failing = False
        while not load.done():
            elapsed = time.monotonic() - started
            if not failing and elapsed >= lead_s:
                await behave(topology, 1, error_rate=1.0)
                failing, failed_at = True, elapsed
            if failing and not healed and elapsed >= lead_s + params["failing_s"]:
                await behave(topology, 1, error_rate=0.0)
                healed, healed_at = True, elapsed
            servers = (await call(plane.state))["servers"].get("client-0", [])
            for item in servers:
                if item.get("server") == "backend-1":
                    timeline.append(
                        [
                            round(elapsed, 2),
                            item["status"],
                            item["check_status"],
                            item["down_transitions"],
                        ]
                    )
            await asyncio.sleep(0.1)
        results = (await load)["results"]
        counters = await replica_counters(topology, replicas)
        return {
            "params": params,
            "policy": policy,
            "diff": applied["diff"],
            "failed_at_s": round(failed_at, 2),
            "healed_at_s": round(healed_at, 2) if healed else None,
            "timeline": timeline,
            "requests": [[round(row[0], 3), row[2], row[3]] for row in results],
            "replica_1_failed": counters[1]["failed"],
            "replica_1_received": counters[1]["received"],
        }


async def _client_sidecar_spans(
    plane, started_ns: int, expected: int, attribute: str, value: str
) -> list[dict]:
    """Return the client sidecar's spans since ``started_ns`` whose ``attribute`` is ``value``.

    Its log lines become spans a moment after the calls: wait (3 s at most) for ``expected``.
    """
    deadline = time.monotonic() + 3
    while True:
        spans = [
            span
            for span in await call(plane.spans)
            if span["start_ns"] >= started_ns
            and span["service"] == "client-sidecar"
            and span["attributes"].get(attribute) == value
        ]
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.1)


async def drive_connection_pool(ctx, params: dict) -> dict:
    """Send one burst against a connection pool limit, then the same burst without it."""
    pool = (
        f"{{tcp: {{maxConnections: {params['max_connections']}}},"
        f" http: {{http1MaxPendingRequests: {params['max_pending']}}}}}"
    )
    async with restoring(ctx) as plane:
        topology = await call(plane.topology)
        port = client_outbound(topology, "backend")
        parts = {}
        for label, connection_pool in (("with the limit", pool), ("without a limit", "")):
            policy = documents(
                peer_authentication("STRICT"),
                destination_rule("backend", "ROUND_ROBIN", pool=connection_pool),
                # No retries: each refusal reaches the caller as HAProxy gave it.
                virtual_service("backend", retries="{attempts: 0}"),
            )
            applied = await call(plane.apply, policy)
            await reset_backends(topology, [0])
            await behave(topology, 0, delay_ms=params["work_ms"])
            totals_before = (await call(plane.totals)).get("client-0", {})
            started_ns = time.time_ns()
            measured = await ctx.fork(
                loadgen.closed_loop,
                port,
                "/quote?item=pool",
                params["burst"],
                params["burst"],
                1,  # every call traced: each one's span carries HAProxy's timers
            )
            # HAProxy's counters, read before the next policy reloads them away.
            totals_after = (await call(plane.totals)).get("client-0", {})
            counters = (await replica_counters(topology, [0]))[0]
            spans = await _client_sidecar_spans(
                plane, started_ns, params["burst"], "haproxy.backend", "backend"
            )
            before = totals_before.get("backend/BACKEND", {})
            after = totals_after.get("backend/BACKEND", {})
            rows = measured["results"]
            parts[label] = {
                "policy": policy,
                "diff": applied["diff"].get("client-0", ""),
                "calls": len(rows),
                "caller_ok": sum(1 for row in rows if row[1] == 200),
                "caller_503": sum(1 for row in rows if row[1] == 503),
                "caller_other": sum(1 for row in rows if row[1] not in (200, 503)),
                "latency_ms": summary([row[0] for row in rows]),
                "haproxy_denied": after.get("denied", 0) - before.get("denied", 0),
                "haproxy_queue_max": after.get("queued_max", 0),
                "spans": len(spans),
                "spans_queued": sum(
                    1 for span in spans if span["attributes"]["haproxy.timers_ms"]["tw"] > 0
                ),
                "spans_refused": sum(
                    1
                    for span in spans
                    if str(span["attributes"].get("haproxy.termination_state", "")).startswith("PR")
                ),
                "spans_queue_wait_ms": summary(
                    [
                        span["attributes"]["haproxy.timers_ms"]["tw"]
                        for span in spans
                        if span["attributes"]["haproxy.timers_ms"]["tw"] > 0
                    ]
                ),
                "backend_received": counters["received"],
                "backend_max_in_flight": counters["max_in_flight"],
            }
        return {"params": params, "parts": parts}


def _backend_retries(totals: dict, sidecar_name: str, backend: str) -> int:
    return totals.get(sidecar_name, {}).get(f"{backend}/BACKEND", {}).get("retries", 0)


async def drive_retries(ctx, params: dict) -> dict:
    """Rescue a flaky replica with retries; multiply load with retries at two hops; time out."""
    attempts = params["attempts"]
    async with restoring(ctx) as plane:
        replicas = await scale_backend(ctx, 3)
        topology = await call(plane.topology)
        backend_port = client_outbound(topology, "backend")
        # Part 1: one replica fails a share of requests; the caller's error rate with and without retries.
        rescue = {}
        for label, retries in (
            ("no retries", "{attempts: 0}"),
            (f"{attempts} retries on 5xx", f"{{attempts: {attempts}, retryOn: 5xx}}"),
        ):
            policy = documents(
                peer_authentication("STRICT"),
                destination_rule("backend", "ROUND_ROBIN"),
                virtual_service("backend", retries=retries),
            )
            await call(plane.apply, policy)
            await reset_backends(topology, replicas)
            await behave(topology, 1, error_rate=params["flaky_error_rate"])
            totals_before = await call(plane.totals)
            measured = await ctx.fork(
                loadgen.closed_loop, backend_port, "/quote?item=flaky", params["requests"], 4, 0
            )
            totals_after = await call(plane.totals)
            counters = await replica_counters(topology, replicas)
            rescue[label] = {
                "caller_failed": sum(1 for row in measured["results"] if row[1] != 200),
                "caller_requests": len(measured["results"]),
                "flaky_replica_received": counters[1]["received"],
                "flaky_replica_failed": counters[1]["failed"],
                "backend_received_total": sum(c["received"] for c in counters.values()),
                "haproxy_retries": _backend_retries(totals_after, "client-0", "backend")
                - _backend_retries(totals_before, "client-0", "backend"),
                "policy": policy,
            }
        # Part 2: the backend fails everything; retries at one hop, then at two.
        await scale_backend(ctx, 1)
        storm = {}
        storm_requests = max(10, params["requests"] // 10)
        retry = f"{{attempts: {attempts}, retryOn: 5xx}}"
        for label, frontend_retries in (
            ("retries at one hop", "{attempts: 0}"),
            ("retries at two hops", retry),
        ):
            policy = documents(
                peer_authentication("STRICT"),
                virtual_service("backend", retries=retry),
                virtual_service("frontend", retries=frontend_retries),
            )
            await call(plane.apply, policy)
            await reset_backends(topology, [0])
            await behave(topology, 0, error_rate=1.0)
            measured = await ctx.fork(
                loadgen.closed_loop,
                client_outbound(topology, "frontend"),
                "/checkout?item=storm",
                storm_requests,
                2,
                0,
            )
            counters = await replica_counters(topology, [0])
            storm[label] = {
                "client_requests": len(measured["results"]),
                "client_failed": sum(1 for row in measured["results"] if row[1] != 200),
                "backend_received": counters[0]["received"],
                "amplification": round(
                    counters[0]["received"] / max(1, len(measured["results"])), 2
                ),
                "policy": policy,
            }
        # Part 3: a slow backend, a per-try timeout and an overall timeout.
        await reset_backends(topology, [0])
        await behave(topology, 0, delay_ms=300)
        timeouts = {}
        for label, route in (
            ("timeout 250ms", {"timeout": "250ms", "retries": "{attempts: 0}"}),
            (
                "perTryTimeout 100ms x 3 tries, timeout 250ms",
                {
                    "timeout": "250ms",
                    "retries": "{attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}",
                },
            ),
        ):
            policy = documents(peer_authentication("STRICT"), virtual_service("backend", **route))
            await call(plane.apply, policy)
            await reset_backends(topology, [0])
            await behave(topology, 0, delay_ms=300)
            measured = await ctx.fork(
                loadgen.closed_loop, backend_port, "/quote?item=slow", 5, 1, 0
            )
            counters = await replica_counters(topology, [0])
            timeouts[label] = {
                "statuses": sorted({row[1] for row in measured["results"]}),
                "elapsed_ms": summary([row[0] for row in measured["results"]]),
                "backend_received": counters[0]["received"],
                "calls": len(measured["results"]),
                "policy": policy,
            }
        return {"params": params, "rescue": rescue, "storm": storm, "timeouts": timeouts}


async def drive_fault_injection(ctx, params: dict) -> dict:
    """Delay and abort a share of calls by policy alone; find each in the sidecars' spans."""
    async with restoring(ctx) as plane:
        topology = await call(plane.topology)
        fault = (
            f"{{delay: {{percentage: {{value: {params['delay_percent']}}}, fixedDelay: {params['delay_ms']}ms}},"
            f" abort: {{percentage: {{value: {params['abort_percent']}}}, httpStatus: 503}}}}"
        )
        policy = documents(peer_authentication("STRICT"), virtual_service("backend", fault=fault))
        applied = await call(plane.apply, policy)
        await reset_backends(topology, [0])
        started_ns = time.time_ns()
        measured = await ctx.fork(
            loadgen.closed_loop,
            client_outbound(topology, "backend"),
            "/quote?item=fault",
            params["requests"],
            4,
            1,
        )
        counters = await replica_counters(topology, [0])
        spans = await _client_sidecar_spans(
            plane, started_ns, len(measured["results"]), "url.path", "/quote"
        )
        delayed = [s for s in spans if s["attributes"].get("mesh.fault") == "delay"]
        aborted = [s for s in spans if s["attributes"].get("mesh.fault") == "abort"]
        rows = measured["results"]
        return {
            "params": params,
            "policy": policy,
            "diff": applied["diff"],
            "requests": len(rows),
            "caller_503": sum(1 for row in rows if row[1] == 503),
            "caller_slow": sum(1 for row in rows if row[0] >= params["delay_ms"]),
            "backend_received": counters[0]["received"],
            "spans": len(spans),
            "spans_delayed": len(delayed),
            "spans_aborted": len(aborted),
            "delayed_span_ms": summary([(s["end_ns"] - s["start_ns"]) / 1e6 for s in delayed]),
            "other_span_ms": summary(
                [
                    (s["end_ns"] - s["start_ns"]) / 1e6
                    for s in spans
                    if not s["attributes"].get("mesh.fault")
                ]
            ),
            "example_trace": (aborted or delayed or spans or [{}])[0].get("trace_id"),
        }
