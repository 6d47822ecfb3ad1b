"""Drive the experiments about the mesh itself: what it costs, mTLS, live policy, tracing.

Each ``drive_*`` runs the sandbox and returns measured figures; ``reports``
writes them up. Each leaves the sandbox as it found it.
"""

from __future__ import annotations

import asyncio
import http.client
import time

from . import loadgen
from sandbox_services.proxy.logs import BATCH_INTERVAL_S
from sandbox_services.runtime.sample_stats import summary

from .measure import cpu_ns, memory_kb
from .scenario import (
    call,
    client_outbound,
    control_plane,
    destination_rule,
    documents,
    peer_authentication,
    restoring,
    scale_backend,
    sidecar,
    virtual_service,
)


def _sidecar_pids(topology: dict, names: list[str]) -> dict[str, list[int]]:
    by_name = {item["sidecar"]: item for item in topology["processes"]}
    return {
        name: [by_name[name]["master_pid"], *by_name[name]["worker_pids"]]
        for name in names
        if by_name[name]["master_pid"]
    }


def _cpu(pids: dict[str, list[int]]) -> dict[str, int]:
    return {name: sum(cpu_ns(pid) or 0 for pid in group) for name, group in pids.items()}


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
    # The control plane reads log lines in batches: let it take the run's last ones.
    await asyncio.sleep(BATCH_INTERVAL_S * 2)
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


async def drive_mtls(ctx, params: dict) -> dict:
    """Refuse or accept a plaintext client by PeerAuthentication mode; rotate certificates under load."""
    async with restoring(ctx) as plane:
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


async def drive_live_policy(ctx, params: dict) -> dict:
    """Change the policy several times while traffic flows through two hops; count what failed."""
    async with restoring(ctx) as plane:
        await scale_backend(ctx, 3)
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
