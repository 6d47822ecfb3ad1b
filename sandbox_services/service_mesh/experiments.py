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
from .knobs import DEFAULT_POLICY
from .measure import cpu_ns, memory_kb, summary
from .scenario import (
    call,
    client_outbound,
    control_plane,
    destination_rule,
    documents,
    peer_authentication,
    restore,
    sidecar,
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
    memory = {
        name: [memory_kb(pid) for pid in group] for name, group in watched.items()
    }
    return {
        "params": params,
        "latency_us": {name: summary(values) for name, values in measured["latencies_us"].items()},
        "errors": measured["errors"],
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
        "sidecars": len(topology["sidecars"]),
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


async def _wait_for_spans(plane, trace_ids: list[str], at_least: int, timeout_s: float = 3.0) -> list[dict]:
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
