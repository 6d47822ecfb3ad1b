"""The mesh's control plane, one process per sandbox: certificates, sidecars, policy.

It plays istiod's parts (CA, configuration from policy, endpoint discovery)
and the kubelet's (it starts each sidecar HAProxy as its own child, with its
replica). It also owns the sidecars' log socket, whose lines ``telemetry``
turns into spans. The data plane, the requests themselves, never passes
through this process.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path

from sandbox_services.proxy import runtime_api
from sandbox_services.proxy.certs import CertificateAuthority, Issued
from sandbox_services.proxy.logs import LogReceiver
from sandbox_services.proxy.process import ConfigInvalid, HAProxyProcess

from . import knobs
from .policy import MeshPolicy, PolicyInvalid, parse_policy
from .render import MeshFiles, connection_shares, render_sidecar
from .telemetry import SidecarTelemetry
from .topology import (
    APP_SERVICES,
    REPLICAS,
    Sidecar,
    mesh_directory,
    mesh_enabled,
    sidecars_of_plan,
)

log = logging.getLogger(__name__)


class ControlPlane:
    """Own the sandbox's CA and sidecars; apply policy; read state and telemetry."""

    def __init__(self, plan, put_span) -> None:
        self.plan = plan
        self.sandbox_id = plan.sandbox_id
        self.sidecars: list[Sidecar] = sidecars_of_plan(plan)
        directory = mesh_directory(plan.workdir)
        directory.mkdir(parents=True, exist_ok=True)
        # Unix socket paths must stay under 108 bytes: a short directory of their own.
        sockets = Path(tempfile.mkdtemp(prefix=f"labmesh-{self.sandbox_id[:8]}-"))
        self.files = MeshFiles(
            sandbox_id=self.sandbox_id,
            config_directory=directory,
            socket_directory=sockets,
            ca_path=directory / "certs" / "ca.pem",
        )
        self.ca = CertificateAuthority(self.sandbox_id, directory / "certs")
        self.certificates: dict[str, Issued] = {}
        self.policy_text = knobs.DEFAULT_POLICY
        self.policy: MeshPolicy = parse_policy(self.policy_text)
        self.version = 1
        self.history: list[dict] = []
        self.proxies: dict[str, HAProxyProcess] = {}
        self.telemetry = SidecarTelemetry(
            self.sidecars, self.ca, lambda workload: self.policy.mtls(workload), put_span
        )
        self.logs = LogReceiver(self.files.log_socket, self.telemetry.on_record)
        self._lock = asyncio.Lock()
        self._known_running: dict[str, set[int]] = {}
        self.start_ms: dict[str, float] = {}
        self.started: set[str] = set()  # sidecars whose HAProxy runs

    # -- life --------------------------------------------------------------

    def running(self) -> dict[str, set[int]]:
        """Return the running replicas of each app service (the endpoints)."""
        return {name: set(self.plan.table.running(name)) for name in APP_SERVICES}

    async def start(self) -> None:
        """Issue certificates, start the log socket, then the sidecars of the first instances.

        A replica's sidecar starts when the replica does and stops with it, as a
        pod's does; the sandbox starts with one instance of each service.
        """
        started = time.monotonic()
        for workload in REPLICAS:
            self.certificates[workload] = self.ca.issue(workload, ttl=knobs.WORKLOAD_CERT_TTL)
        self.start_ms["certificates"] = round((time.monotonic() - started) * 1000, 1)
        await self.logs.start()
        running = self.running()
        self._known_running = running
        for sidecar in self.sidecars:
            self.proxies[sidecar.name] = HAProxyProcess(sidecar.name, self.files.config_directory)
            # Each process's stats socket is where the rendered config says.
            self.proxies[sidecar.name].stats_socket = self.files.stats_socket(sidecar)
            self.proxies[sidecar.name].master_socket = (
                self.files.socket_directory / f"{sidecar.name}.master.sock"
            )
        await asyncio.gather(
            *(
                self._start_sidecar(sidecar, running)
                for sidecar in self.sidecars
                if sidecar.workload not in APP_SERVICES or sidecar.replica == 0
            )
        )
        self.start_ms["sidecars"] = round((time.monotonic() - started) * 1000, 1)

    async def _start_sidecar(self, sidecar: Sidecar, running: dict[str, set[int]]) -> None:
        await self.proxies[sidecar.name].start(self._render(sidecar, running))
        self.started.add(sidecar.name)

    async def _stop_sidecar(self, sidecar: Sidecar) -> None:
        self.started.discard(sidecar.name)
        await self.proxies[sidecar.name].stop()

    async def stop(self) -> None:
        """Stop every sidecar and the log socket; remove the socket directory."""
        await asyncio.gather(*(proxy.stop() for proxy in self.proxies.values()))
        self.started.clear()
        self.logs.close()
        shutil.rmtree(self.files.socket_directory, ignore_errors=True)

    def _render(self, sidecar: Sidecar, running: dict[str, set[int]], policy=None) -> str:
        return render_sidecar(
            sidecar,
            sidecars=self.sidecars,
            policy=policy or self.policy,
            files=self.files,
            running=running,
        )

    # -- endpoints (Istio's EDS) -------------------------------------------

    async def sync_endpoints(self) -> None:
        """Put replicas that stopped into maintenance and ones that started back, live."""
        running = self.running()
        if running == self._known_running:
            return
        self._known_running = running
        async with self._lock:
            # A replica that started gets its sidecar before callers send it anything.
            await asyncio.gather(
                *(
                    self._start_sidecar(sidecar, running)
                    for sidecar in self.sidecars
                    if sidecar.workload in APP_SERVICES
                    and sidecar.replica in running[sidecar.workload]
                    and sidecar.name not in self.started
                )
            )
            await self._set_endpoints(running)
            await asyncio.gather(
                *(
                    self._stop_sidecar(sidecar)
                    for sidecar in self.sidecars
                    if sidecar.workload in APP_SERVICES
                    and sidecar.replica > 0
                    and sidecar.replica not in running[sidecar.workload]
                    and sidecar.name in self.started
                )
            )

    async def _set_endpoints(self, running: dict[str, set[int]]) -> None:
        for sidecar in self.sidecars:
            if sidecar.name not in self.started:
                continue
            for host in sidecar.outbound:
                if host not in running:
                    continue
                targets = [target for target in self.sidecars if target.workload == host]
                # maxConnections is the host's: the replicas now running share it anew.
                shares = connection_shares(
                    self.policy.destination(host).max_connections, targets, running[host]
                )
                for target in targets:
                    state = "ready" if target.replica in running[host] else "maint"
                    commands = [f"set server {host}/{target.name} state {state}"]
                    if target.name in shares:
                        commands.append(
                            f"set maxconn server {host}/{target.name} {shares[target.name]}"
                        )
                    for line in commands:
                        try:
                            await runtime_api.command(self.proxies[sidecar.name].stats_socket, line)
                        except (TimeoutError, OSError) as error:
                            log.warning("endpoint update on %s: %s", sidecar.name, error)

    # -- policy --------------------------------------------------------------

    def preview(self, text: str) -> tuple[MeshPolicy, dict[str, str]]:
        """Validate a policy and render every sidecar with it; raise PolicyInvalid naming the field."""
        policy = parse_policy(text)
        running = self.running()
        return policy, {s.name: self._render(s, running, policy) for s in self.sidecars}

    async def apply(self, text: str) -> dict:
        """Validate, render and apply a policy to every sidecar whose config changed, hitlessly."""
        async with self._lock:
            policy, configs = self.preview(text)
            diffs = {}
            for name, config_text in configs.items():
                old = self.proxies[name].config_text
                # A sidecar not running now renders the policy when its replica starts.
                if name in self.started and old != config_text:
                    diffs[name] = "".join(
                        difflib.unified_diff(
                            old.splitlines(keepends=True),
                            config_text.splitlines(keepends=True),
                            fromfile=f"{name}.cfg (v{self.version})",
                            tofile=f"{name}.cfg (v{self.version + 1})",
                        )
                    )
            started = time.monotonic()
            try:
                reloaded = [name for name in diffs if name in self.started]
                reload_ms = await asyncio.gather(
                    *(self.proxies[name].reload(configs[name]) for name in reloaded)
                )
            except ConfigInvalid as error:  # our renderer's bug, not the learner's
                raise PolicyInvalid({"haproxy": [str(error)]}) from None
            self.policy, self.policy_text = policy, text
            if diffs:
                self.version += 1
            applied = {
                "version": self.version,
                "changed": sorted(reloaded),
                "diff": diffs,
                "reload_ms": {
                    name: round(ms, 1) for name, ms in zip(reloaded, reload_ms, strict=True)
                },
                "applied_in_ms": round((time.monotonic() - started) * 1000, 1),
                "at": time.time(),
            }
            self.history.append({k: v for k, v in applied.items() if k != "diff"})
            return applied

    # -- certificates ----------------------------------------------------------

    async def rotate(self) -> dict:
        """Issue every workload a new certificate and swap it into its sidecars in memory."""
        async with self._lock:
            rotated = {}
            for workload in REPLICAS:
                old = self.certificates[workload]
                new = self.ca.issue(workload, ttl=knobs.WORKLOAD_CERT_TTL)
                self.certificates[workload] = new
                loaded = {}
                for sidecar in self.sidecars:
                    if sidecar.workload == workload and sidecar.name in self.started:
                        socket_path = self.proxies[sidecar.name].stats_socket
                        await runtime_api.set_ssl_cert(socket_path, new.path, new.pem)
                        # HAProxy's own word on what it now serves.
                        loaded[sidecar.name] = runtime_api.certificate_serial(
                            await runtime_api.command(socket_path, f"show ssl cert {new.path}")
                        )
                rotated[workload] = {
                    "old_serial": old.serial,
                    "new_serial": new.serial,
                    "loaded_by_sidecars": loaded,
                }
            return rotated

    # -- mesh on/off -------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        """Point the apps at their sidecars (on) or straight at their peers (off)."""
        flag = mesh_directory(self.plan.workdir) / "off"
        if enabled:
            flag.unlink(missing_ok=True)
        else:
            flag.touch()

    # -- state, from HAProxy ---------------------------------------------------------

    async def server_states(self) -> dict[str, list[dict]]:
        """Return, for each caller sidecar, its view of every upstream replica (``show stat``)."""
        result: dict[str, list[dict]] = {}
        for sidecar in self.sidecars:
            if not sidecar.outbound:
                continue
            try:
                text = await runtime_api.command(
                    self.proxies[sidecar.name].stats_socket, "show stat"
                )
                states = runtime_api.server_states(text)
            except (TimeoutError, OSError, ValueError) as error:
                result[sidecar.name] = [{"error": str(error)}]
                continue
            result[sidecar.name] = [
                state.as_dict() for state in states if state.backend in sidecar.outbound
            ]
        return result

    async def totals(self) -> dict[str, dict]:
        """Return each sidecar's frontend/backend counters from its own stats."""
        result = {}
        for name, proxy in self.proxies.items():
            if name not in self.started:
                continue
            try:
                result[name] = runtime_api.proxy_totals(
                    await runtime_api.command(proxy.stats_socket, "show stat")
                )
            except (TimeoutError, OSError, ValueError) as error:
                result[name] = {"error": str(error)}
        return result

    def processes(self) -> list[dict]:
        """Return each sidecar's master and worker pids (for CPU and memory figures)."""
        return [
            {
                "sidecar": sidecar.name,
                "workload": sidecar.workload,
                "replica": sidecar.replica,
                "master_pid": self.proxies[sidecar.name].pid,
                "worker_pids": self.proxies[sidecar.name].worker_pids(),
                "reloads": self.proxies[sidecar.name].reloads,
            }
            for sidecar in self.sidecars
        ]

    def topology(self) -> dict:
        """Return the sidecars, their listeners and identities (what experiments dial)."""
        return {
            "enabled": mesh_enabled(self.plan.workdir),
            "version": self.version,
            "start_ms": self.start_ms,
            "ca": str(self.files.ca_path),
            "sidecars": [
                {
                    "name": sidecar.name,
                    "workload": sidecar.workload,
                    "replica": sidecar.replica,
                    "app_port": sidecar.app_port,
                    "inbound_port": sidecar.inbound_port,
                    "outbound": sidecar.outbound,
                    "mtls": self.policy.mtls(sidecar.workload) if sidecar.inbound_port else None,
                    "spiffe_id": self.certificates[sidecar.workload].spiffe_id,
                    "cert_serial": self.certificates[sidecar.workload].serial,
                    "cert_path": str(self.certificates[sidecar.workload].path),
                    "stats_socket": str(self.proxies[sidecar.name].stats_socket),
                    "running": sidecar.name in self.started,
                }
                for sidecar in self.sidecars
            ],
        }

    def config_lines(self) -> int:
        """Return the lines of generated HAProxy configuration across the sandbox."""
        return sum(
            len(proxy.config_text.splitlines())
            for name, proxy in self.proxies.items()
            if name in self.started
        )

    # -- telemetry ------------------------------------------------------------------

    def edge_metrics(self) -> list[dict]:
        """Return each caller -> replica edge's counts and p99, from the sidecars' log lines."""
        return self.telemetry.edge_metrics()

    @property
    def refused(self) -> deque:
        return self.telemetry.refused

    @property
    def records(self) -> int:
        return self.telemetry.records
