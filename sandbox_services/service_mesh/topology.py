"""Who has a sidecar, on which ports, and where a service reaches its peers.

One sidecar per workload instance, as in Istio: the client (the experiments'
load generator, a workload of the mesh like any other), the frontend, and
each of the backend's three replicas. A sidecar has an inbound listener
(mTLS, in front of its app) and one plaintext outbound listener per
upstream host (the app's calls to that host go there).

Istio sends the app's traffic to the sidecar with an iptables REDIRECT in
the pod's network namespace, so the app dials the real address. Processes
here share one network namespace, so the lab rewrites the address instead:
``route`` answers ``ctx.address(peer)`` with the sidecar's outbound listener.
The app's code is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

POOL = "sidecars"
REPLICAS = {"client": 1, "frontend": 1, "backend": 3}
UPSTREAMS = {"client": ("frontend", "backend"), "frontend": ("backend",), "backend": ()}
APP_SERVICES = ("frontend", "backend")  # the workloads that are services of the sandbox


def pool_size() -> int:
    """Return how many ports the sidecars need: one inbound per app replica, one per upstream."""
    inbound = sum(REPLICAS[name] for name in APP_SERVICES)
    outbound = sum(REPLICAS[name] * len(UPSTREAMS[name]) for name in REPLICAS)
    return inbound + outbound


@dataclass(frozen=True)
class Sidecar:
    workload: str
    replica: int
    app_port: int | None  # the app it stands beside (None for the client)
    inbound_port: int | None
    outbound: dict[str, int] = field(default_factory=dict)  # upstream host -> listener port

    @property
    def name(self) -> str:
        return f"{self.workload}-{self.replica}"


def sidecars(ports: dict[str, list[int]], pool: list[int]) -> list[Sidecar]:
    """Lay the sidecars out on the reserved pool, always in the same order."""
    free = iter(pool)
    result = []
    for workload, replicas in REPLICAS.items():
        for replica in range(replicas):
            app_port = ports[workload][replica] if workload in APP_SERVICES else None
            inbound = next(free) if workload in APP_SERVICES else None
            outbound = {host: next(free) for host in UPSTREAMS[workload]}
            result.append(Sidecar(workload, replica, app_port, inbound, outbound))
    return result


def sidecars_of_plan(plan) -> list[Sidecar]:
    """Return the sandbox's sidecars from its plan (ports and the reserved pool)."""
    return sidecars(plan.ports, plan.extra_ports[POOL])


def port_names(plan) -> dict[int, str]:
    """Name every sidecar listener for the spans: a call to one is a call to "<workload>-sidecar"."""
    names = {}
    for sidecar in sidecars_of_plan(plan):
        ports = [*sidecar.outbound.values()]
        if sidecar.inbound_port is not None:
            ports.append(sidecar.inbound_port)
        names.update({port: f"{sidecar.workload}-sidecar" for port in ports})
    return names


def mesh_directory(workdir: Path) -> Path:
    """Return the directory of the sandbox's mesh files (configs, certificates)."""
    return Path(workdir) / "mesh"


def mesh_enabled(workdir: Path) -> bool:
    """Tell whether apps call through their sidecars (the default) or straight to their peers."""
    return not (mesh_directory(workdir) / "off").exists()


def route(plan, service: str, replica: int, peer: str) -> list[str] | None:
    """Return where ``service`` replica ``replica`` reaches ``peer``: its own sidecar's listener.

    The runtime asks on every ``ctx.address``/``ctx.addresses`` call, so turning
    the mesh off (the control plane's switch) takes effect on the next call.
    """
    if service not in APP_SERVICES or not mesh_enabled(plan.workdir):
        return None
    for sidecar in sidecars_of_plan(plan):
        if sidecar.workload == service and sidecar.replica == replica:
            port = sidecar.outbound.get(peer)
            return [f"127.0.0.1:{port}"] if port else None
    return None
