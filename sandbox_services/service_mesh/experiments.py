"""The lesson's experiments: each drives the sandbox and returns measured figures.

Every function here is ``async def f(ctx, params) -> dict``: it measures
(``drive_*``) and hands the figures to ``reports`` for the headline, table
and notes. Parameters arrive validated against ``knobs.PARAMETERS``. Each
experiment leaves the sandbox as it found it (default policy, one backend
replica, mesh on), even when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time

from . import loadgen, reports
from .measure import cpu_ns, memory_kb, summary
from .scenario import (
    behave,
    call,
    client_outbound,
    control_plane,
    destination_rule,
    documents,
    peer_authentication,
    replica_counters,
    restore,
    sidecar,
    virtual_service,
)


@contextlib.asynccontextmanager
async def _restoring(ctx):
    plane = control_plane(ctx)
    try:
        yield plane
    finally:
        await restore(ctx, plane)


def _sidecar_pids(topology: dict, names: list[str]) -> dict[str, list[int]]:
    by_name = {item["sidecar"]: item for item in topology["processes"]}
    return {
        name: [by_name[name]["master_pid"], *by_name[name]["worker_pids"]]
        for name in names
        if by_name[name]["master_pid"]
    }


def _cpu(pids: dict[str, list[int]]) -> dict[str, int]:
    return {name: sum(cpu_ns(pid) or 0 for pid in group) for name, group in pids.items()}


# --- 1. overhead ------------------------------------------------------------------


async def drive_overhead(ctx, params: dict) -> dict:
    """Measure the same calls to the backend direct and through two sidecars with mTLS, interleaved."""
    plane = control_plane(ctx)
    topology = await call(plane.topology)
    backend = sidecar(topology, "backend-0")
    targets = {"mesh off": backend["app_port"], "mesh on": client_outbound(topology, "backend")}
    watched = _sidecar_pids(topology, ["client-0", "backend-0"])
    plane_pid = topology["control_plane_pid"]
    traced_every = round(100 / params["traced_percent"]) if params["traced_percent"] > 0 else 0
    before = _cpu(watched)
    plane_before = cpu_ns(plane_pid) or 0
    measured = await ctx.fork(
        loadgen.interleaved_fixed_rate,
        targets,
        "/quote?item=book",
        params["rate"],
        params["duration_s"] * 2,  # two modes share the rate: each gets duration_s of it
        traced_every,
        50,
    )
    after = _cpu(watched)
    plane_after = cpu_ns(plane_pid) or 0
    mesh_requests = len(measured["latencies_us"]["mesh on"]) or 1
    memory = {name: [memory_kb(pid) for pid in group] for name, group in watched.items()}
    return {
        "params": params,
        "latency_us": {name: summary(values) for name, values in measured["latencies_us"].items()},
        "errors": measured["errors"],
        "warmup_errors": measured["warmup_errors"],
        "requests": {name: len(values) for name, values in measured["latencies_us"].items()},
        "cpu_ms_per_1000": {
            name: (after[name] - before[name]) / 1e6 / mesh_requests * 1000 for name in watched
        },
        "control_plane_cpu_ms_per_1000": (plane_after - plane_before) / 1e6 / mesh_requests * 1000,
        "memory_kb": {
            name: {
                "rss": sum(item.get("rss", 0) for item in values),
                "pss": sum(item.get("pss", 0) for item in values),
                "processes": len(values),
            }
            for name, values in memory.items()
        },
        "sidecars": sum(1 for item in topology["sidecars"] if item["running"]),
        "config_lines": topology["config_lines"],
        "mtls": sidecar(topology, "backend-0")["mtls"],
    }


async def overhead(ctx, params: dict) -> dict:
    return reports.overhead(await drive_overhead(ctx, params))


# --- 2. mTLS ------------------------------------------------------------------------


def _plaintext_call(port: int) -> dict:
    """Call a sidecar's inbound port with no TLS at all, as a workload outside the mesh would."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/quote?item=plaintext")
        response = connection.getresponse()
        return {"accepted": True, "status": response.status, "body": response.read()[:200].decode()}
    except (OSError, http.client.HTTPException) as error:
        return {"accepted": False, "error": f"{type(error).__name__}: {error}"}
    finally:
        connection.close()


async def _wait_for_spans(
    plane, trace_ids: list[str], at_least: int, timeout_s: float = 3.0
) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        spans = await call(plane.spans, trace_ids)
        if len(spans) >= at_least or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.05)


async def drive_mtls(ctx, params: dict) -> dict:
    """Refuse or accept a plaintext client by PeerAuthentication mode; rotate certificates under load."""
    async with _restoring(ctx) as plane:
        policy = documents(
            peer_authentication("STRICT"),
            peer_authentication(params["mode"], "backend"),
            destination_rule("backend"),
        )
        applied = await call(plane.apply, policy)
        topology = await call(plane.topology)
        inbound = sidecar(topology, "backend-0")["inbound_port"]
        refused_before = len((await call(plane.state))["refused"])
        plaintext = await call(_plaintext_call, inbound)
        await asyncio.sleep(0.2)  # HAProxy's error line reaches the control plane
        state = await call(plane.state)
        refusals = state["refused"][refused_before:]
        # One traced call through the mesh: the sidecars' spans carry the identities.
        meshed = await ctx.fork(
            loadgen.closed_loop, client_outbound(topology, "backend"), "/quote?item=meshed", 1, 1, 1
        )
        spans = [
            span
            for span in await call(plane.spans)
            if span["attributes"].get("url.path") == "/quote"
            and span["start_ns"] > time.time_ns() - 5_000_000_000
        ][-2:]
        rotation = None
        if params["rotation_requests"] > 0:
            rate = 200
            duration_s = params["rotation_requests"] / rate
            port = client_outbound(topology, "backend")
            load = asyncio.ensure_future(
                ctx.fork(loadgen.fixed_rate, port, "/quote?item=rotation", rate, duration_s, 0)
            )
            await asyncio.sleep(duration_s / 3)
            rotated = await call(plane.rotate)
            results = (await load)["results"]
            failed = [row for row in results if row[2] != 200]
            rotation = {
                "requests": len(results),
                "failed": len(failed),
                "rotated": rotated,
                "failures": failed[:5],
            }
        return {
            "params": params,
            "policy": policy,
            "diff": applied["diff"],
            "plaintext": plaintext,
            "refusals": refusals,
            "meshed_status": [row[1] for row in meshed["results"]],
            "identities": [
                {
                    "service": span["service"],
                    "kind": span["kind"],
                    "peer_spiffe_id": span["attributes"].get("peer.spiffe_id"),
                    "mtls": span["attributes"].get("mtls"),
                }
                for span in spans
            ],
            "rotation": rotation,
        }


async def mtls(ctx, params: dict) -> dict:
    return reports.mtls(await drive_mtls(ctx, params))


# --- 3. load balancing ------------------------------------------------------------------


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
    async with _restoring(ctx) as plane:
        replicas = await _scale(ctx, plane, 3)
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
            await _reset(topology, replicas)
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


async def load_balancing(ctx, params: dict) -> dict:
    return reports.load_balancing(await drive_load_balancing(ctx, params))


async def _scale(ctx, plane, replicas: int) -> list[int]:
    """Run that many backend replicas; wait until every caller's sidecar has them as endpoints."""
    await ctx.control("scale", "backend", replicas=replicas)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        servers = (await call(plane.state))["servers"].get("client-0", [])
        ready = [s for s in servers if s.get("backend") == "backend" and s["status"] != "MAINT"]
        if len(ready) >= replicas:
            break
        await asyncio.sleep(0.05)
    return list(range(replicas))


async def _reset(topology: dict, replicas: list[int]) -> None:
    await asyncio.gather(*(behave(topology, replica, reset=True) for replica in replicas))


# --- 4. outlier detection ------------------------------------------------------------------


async def drive_outlier_detection(ctx, params: dict) -> dict:
    """Fail one replica for a while; follow its state in HAProxy while steady traffic flows."""
    async with _restoring(ctx) as plane:
        replicas = await _scale(ctx, plane, 3)
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
        await _reset(topology, replicas)
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


async def outlier_detection(ctx, params: dict) -> dict:
    return reports.outlier_detection(await drive_outlier_detection(ctx, params))


# --- 5. retries ------------------------------------------------------------------------------


def _backend_retries(totals: dict, sidecar_name: str, backend: str) -> int:
    return totals.get(sidecar_name, {}).get(f"{backend}/BACKEND", {}).get("retries", 0)


async def drive_retries(ctx, params: dict) -> dict:
    """Rescue a flaky replica with retries; multiply load with retries at two hops; time out."""
    attempts = params["attempts"]
    async with _restoring(ctx) as plane:
        replicas = await _scale(ctx, plane, 3)
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
            await _reset(topology, replicas)
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
        await _scale(ctx, plane, 1)
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
            await _reset(topology, [0])
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
        await _reset(topology, [0])
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
            await _reset(topology, [0])
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


async def retries(ctx, params: dict) -> dict:
    return reports.retries(await drive_retries(ctx, params))


# --- 6. fault injection -----------------------------------------------------------------------


async def drive_fault_injection(ctx, params: dict) -> dict:
    """Delay and abort a share of calls by policy alone; find each in the sidecars' spans."""
    async with _restoring(ctx) as plane:
        topology = await call(plane.topology)
        fault = (
            f"{{delay: {{percentage: {{value: {params['delay_percent']}}}, fixedDelay: {params['delay_ms']}ms}},"
            f" abort: {{percentage: {{value: {params['abort_percent']}}}, httpStatus: 503}}}}"
        )
        policy = documents(peer_authentication("STRICT"), virtual_service("backend", fault=fault))
        applied = await call(plane.apply, policy)
        await _reset(topology, [0])
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
        deadline = time.monotonic() + 3
        while True:
            spans = [
                span
                for span in await call(plane.spans)
                if span["start_ns"] >= started_ns
                and span["service"] == "client-sidecar"
                and span["attributes"].get("url.path") == "/quote"
            ]
            if len(spans) >= len(measured["results"]) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
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


async def fault_injection(ctx, params: dict) -> dict:
    return reports.fault_injection(await drive_fault_injection(ctx, params))


# --- 7. trace propagation ------------------------------------------------------------------------


def _kept_spans(redis_url: str, sandbox_id: str, since_ns: int) -> list[dict]:
    import json

    import redis

    from sandbox_services.runtime import keys

    connection = redis.Redis.from_url(redis_url)
    try:
        raw = connection.zrange(keys.sandbox_spans(sandbox_id), -5000, -1)
    finally:
        connection.close()
    spans = [json.loads(item) for item in raw]
    return [span for span in spans if span.get("start_ns", 0) >= since_ns]


def _traces_of(spans: list[dict], tag: str) -> dict[str, set[str]]:
    """Return trace id -> services, for the traces that touched calls tagged ``tag``."""
    tagged = {
        span["trace_id"]
        for span in spans
        if tag in str(span.get("attributes", {}).get("url.full", ""))
        or tag in str(span.get("attributes", {}).get("url.query", ""))
        or tag in str(span.get("attributes", {}).get("http.url", ""))
    }
    traces: dict[str, set[str]] = {}
    for span in spans:
        if span["trace_id"] in tagged:
            traces.setdefault(span["trace_id"], set()).add(span["service"])
    return traces


async def drive_trace_propagation(ctx, params: dict) -> dict:
    """Call the frontend with and without it forwarding the trace context; count the traces."""
    plane = control_plane(ctx)
    topology = await call(plane.topology)
    port = client_outbound(topology, "frontend")
    started_ns = time.time_ns()
    runs = {}
    for label, forward in (("forwarded", "1"), ("not forwarded", "0")):
        tag = f"tp{forward}x{started_ns}"
        await ctx.fork(
            loadgen.closed_loop,
            port,
            f"/checkout?item={tag}&forward={forward}",
            params["calls"],
            1,
            1,
        )
        runs[label] = tag
    result = {}
    deadline = time.monotonic() + 6
    seen, stable = -1, 0
    # Spans reach the sandbox's store from several processes: wait until they stop coming.
    while time.monotonic() < deadline and stable < 4:
        spans = await call(_kept_spans, ctx.redis_url, ctx.sandbox_id, started_ns)
        result = {label: _traces_of(spans, tag) for label, tag in runs.items()}
        count = sum(len(s) for traces in result.values() for s in traces.values())
        stable = stable + 1 if count == seen and count >= params["calls"] * 10 else 0
        seen = count
        await asyncio.sleep(0.2)
    return {
        "params": params,
        "traces": {
            label: [sorted(services) for services in traces.values()]
            for label, traces in result.items()
        },
    }


async def trace_propagation(ctx, params: dict) -> dict:
    return reports.trace_propagation(await drive_trace_propagation(ctx, params))


# --- the control plane at work: policy changes under traffic ---------------------------------------


async def drive_live_policy(ctx, params: dict) -> dict:
    """Change the policy several times while traffic flows through two hops; count what failed."""
    async with _restoring(ctx) as plane:
        await _scale(ctx, plane, 3)
        topology = await call(plane.topology)
        changes = params["changes"]
        duration_s = 1.0 + changes * 0.5
        variants = [
            documents(peer_authentication("STRICT"), destination_rule("backend", "ROUND_ROBIN")),
            documents(
                peer_authentication("STRICT"),
                destination_rule("backend", "LEAST_REQUEST"),
                virtual_service(
                    "backend",
                    retries="{attempts: 2, perTryTimeout: 1s, retryOn: 5xx}",
                    timeout="3s",
                ),
            ),
        ]
        load = asyncio.ensure_future(
            ctx.fork(
                loadgen.fixed_rate,
                client_outbound(topology, "frontend"),
                "/checkout?item=live",
                params["rate"],
                duration_s,
                50,
            )
        )
        await asyncio.sleep(0.5)
        applied = []
        for index in range(changes):
            applied.append(await call(plane.apply, variants[index % 2]))
            await asyncio.sleep(0.4)
        results = (await load)["results"]
        return {
            "params": params,
            "requests": len(results),
            "failed": [row for row in results if row[2] != 200],
            "changes": [
                {key: item[key] for key in ("version", "changed", "reload_ms", "applied_in_ms")}
                for item in applied
            ],
            "last_diff": applied[-1]["diff"] if applied else {},
        }


async def live_policy(ctx, params: dict) -> dict:
    return reports.live_policy(await drive_live_policy(ctx, params))
