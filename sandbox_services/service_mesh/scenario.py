"""The steps experiments share: reach the control plane, shape the backend replicas, write policy.

Policies are written as the YAML a learner would write, so every result can
show the exact policy an experiment applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import time
import json
from typing import Any

from .knobs import DEFAULT_POLICY
from .services.control_plane.client import ControlPlaneClient

CONTROL_PLANE = "control-plane"


def control_plane(ctx) -> ControlPlaneClient:
    return ControlPlaneClient(ctx.address(CONTROL_PLANE))


async def call(function, *args: Any) -> Any:
    """Run a blocking call (the control plane client, a replica's admin route) off the loop."""
    return await asyncio.to_thread(function, *args)


def sidecar(topology: dict, name: str) -> dict:
    return next(item for item in topology["sidecars"] if item["name"] == name)


def client_outbound(topology: dict, host: str) -> int:
    """Return the port where the client workload (the load generator) reaches ``host`` via its sidecar."""
    return sidecar(topology, "client-0")["outbound"][host]


def _admin(port: int, method: str, path: str, body: dict | None = None) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None)
        response = connection.getresponse()
        return json.loads(response.read())
    finally:
        connection.close()


def replica_ports(topology: dict) -> dict[int, int]:
    """Return each backend replica's own (app) port."""
    return {
        item["replica"]: item["app_port"]
        for item in topology["sidecars"]
        if item["workload"] == "backend"
    }


async def behave(topology: dict, replica: int, **behaviour: Any) -> dict:
    """Make one backend replica slow or failing (delay_ms, error_rate, reset=True zeroes counters)."""
    return await call(
        _admin, replica_ports(topology)[replica], "PUT", "/admin/behaviour", behaviour
    )


async def replica_counters(topology: dict, replicas: list[int]) -> dict[int, dict]:
    """Return the replicas' own counters (what each served, as it counts)."""
    ports = replica_ports(topology)
    answers = await asyncio.gather(
        *(call(_admin, ports[replica], "GET", "/admin/stats") for replica in replicas)
    )
    return dict(zip(replicas, answers, strict=True))


async def reset_backends(topology: dict, replicas: list[int]) -> None:
    """Clear every replica's behaviour and counters."""
    await asyncio.gather(*(behave(topology, replica, reset=True) for replica in replicas))


async def scale_backend(ctx, replicas: int) -> list[int]:
    """Run that many backend replicas; wait until the client's sidecar has them as endpoints."""
    plane = control_plane(ctx)
    await ctx.control("scale", "backend", replicas=replicas)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        servers = (await call(plane.state))["servers"].get("client-0", [])
        ready = [s for s in servers if s.get("backend") == "backend" and s["status"] != "MAINT"]
        if len(ready) >= replicas:
            break
        await asyncio.sleep(0.05)
    return list(range(replicas))


@contextlib.asynccontextmanager
async def restoring(ctx):
    """Yield the control plane's client; put the sandbox back as it started afterwards."""
    plane = control_plane(ctx)
    try:
        yield plane
    finally:
        await restore(ctx, plane)


async def restore(ctx, plane: ControlPlaneClient) -> None:
    """Put the sandbox back as it started: default policy, one healthy backend replica, mesh on."""
    await call(plane.set_enabled, True)
    await call(plane.apply, DEFAULT_POLICY)
    await ctx.control("scale", "backend", replicas=1)
    await behave(await call(plane.topology), 0, reset=True)


# --- policies, written as a learner would --------------------------------------------


def peer_authentication(mode: str, workload: str | None = None) -> str:
    selector = f"\n  selector:\n    matchLabels: {{app: {workload}}}" if workload else ""
    name = workload or "default"
    return (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}}}\nspec:{selector}\n  mtls: {{mode: {mode}}}\n"
    )


def destination_rule(
    host: str, balancer: str = "LEAST_REQUEST", outlier: str = "", pool: str = ""
) -> str:
    text = (
        "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n"
        f"metadata: {{name: {host}}}\nspec:\n  host: {host}\n  trafficPolicy:\n"
        f"    loadBalancer: {{simple: {balancer}}}\n"
    )
    if pool:
        text += f"    connectionPool: {pool}\n"
    if outlier:
        text += f"    outlierDetection: {outlier}\n"
    return text


def virtual_service(host: str, **route: str) -> str:
    lines = [
        "apiVersion: networking.istio.io/v1beta1",
        "kind: VirtualService",
        f"metadata: {{name: {host}}}",
        "spec:",
        f"  hosts: [{host}]",
        "  http:",
        f"  - route: [{{destination: {{host: {host}}}}}]",
    ]
    lines += [f"    {key}: {value}" for key, value in route.items()]
    return "\n".join(lines) + "\n"


def documents(*parts: str) -> str:
    """Join resources into one multi-document YAML text."""
    return "---\n".join(parts)
