"""The gateway's own process: it runs the edge HAProxy, loads the issuer's keys, applies policy.

The requests never pass through this process. It renders the proxy's
configuration from the learner's policy, applies it with a hitless reload,
keeps the diff, turns the issuer's published JWKS into the key files
``jwt_verify`` reads (and reloads when the issuer publishes new keys), and
turns each of HAProxy's log lines into the gateway's span (the same
plumbing as the mesh's sidecars: ``sandbox_services.proxy``).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import shutil
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

from sandbox_services.proxy import jwt, runtime_api
from sandbox_services.proxy.logs import LogReceiver
from sandbox_services.proxy.process import ConfigInvalid, HAProxyProcess
from sandbox_services.proxy.spans import span_of_record

from . import knobs
from .policy import BACKENDS, GatewayPolicy, GatewayPolicyInvalid, parse_policy
from .render import GatewayFiles, render_gateway
from .services.issuer.client import jwks_path

log = logging.getLogger(__name__)
EDGE_POOL = "edge"
SAMPLE_FIELDS = ("t0", "t1", "tp", "sid", "route", "auth", "rate", "rlkey", "sub", "fault")
KEY_FETCH_TIMEOUT_S = 8.0


def gateway_directory(workdir: Path) -> Path:
    return Path(workdir) / "gateway"


class Gateway:
    """Own the edge HAProxy: keys, policy, reloads, log lines turned into spans."""

    def __init__(self, plan, put_span) -> None:
        self.plan = plan
        self.listen_port: int = plan.extra_ports[EDGE_POOL][0]
        self.directory = gateway_directory(plan.workdir)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Unix socket paths must stay under 108 bytes: a short directory of their own.
        self.sockets = Path(tempfile.mkdtemp(prefix=f"labgw-{plan.sandbox_id[:8]}-"))
        self.proxy = HAProxyProcess("gateway", self.directory)
        self.proxy.stats_socket = self.sockets / "gateway.stats.sock"
        self.proxy.master_socket = self.sockets / "gateway.master.sock"
        self.logs = LogReceiver(self.sockets / "log.sock", self._on_record)
        self.keys: list[jwt.VerificationKey] = []
        self.loaded_keys: list[jwt.VerificationKey] = []  # what the running proxy verifies with
        self._jwks_text = ""
        self.policy_text = knobs.DEFAULT_POLICY
        self.policy: GatewayPolicy = parse_policy(self.policy_text)
        self.version = 1
        self.history: list[dict] = []
        self.delay_ms = 0
        self.records = 0
        self.by_route: Counter = Counter()
        self.by_verdict: Counter = Counter()
        self.recent: deque = deque(maxlen=200)
        self._put_span = put_span
        self._lock = asyncio.Lock()
        self.start_ms: dict[str, float] = {}

    # -- life ---------------------------------------------------------------

    def backend_ports(self) -> dict[str, int]:
        return {name: self.plan.ports[name][0] for name in BACKENDS}

    def files(self) -> GatewayFiles:
        return GatewayFiles(self.proxy.stats_socket, self.logs.path, tuple(self.keys))

    def render(self, policy: GatewayPolicy | None = None, delay_ms: int | None = None) -> str:
        return render_gateway(
            policy or self.policy,
            files=self.files(),
            listen_port=self.listen_port,
            backend_ports=self.backend_ports(),
            delay_ms=self.delay_ms if delay_ms is None else delay_ms,
        )

    async def load_keys(self) -> list[jwt.VerificationKey]:
        """Wait for the issuer's published JWKS (it writes it as it starts) and write the key files."""
        path = jwks_path(self.plan.workdir)
        deadline = time.monotonic() + KEY_FETCH_TIMEOUT_S
        while True:
            try:
                text = path.read_text()
                jwks = json.loads(text)
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the issuer did not publish its keys at {path}") from None
                await asyncio.sleep(0.003)
        self.keys = jwt.write_jwks(jwks, self.directory / "keys")
        self._jwks_text = text
        return self.keys

    async def refresh_keys(self) -> bool:
        """Reload the proxy if the issuer published other keys (it restarted); tell whether it did."""
        try:
            text = jwks_path(self.plan.workdir).read_text()
        except OSError:
            return False
        if text == self._jwks_text or self.proxy.pid is None:
            return False
        async with self._lock:
            previous = self.keys
            self.keys = jwt.write_jwks(json.loads(text), self.directory / "keys")
            try:
                await self.proxy.reload(self.render())
            except Exception:
                self.keys = previous
                raise
            self._jwks_text = text
            self.loaded_keys = self.keys
        return True

    async def start(self) -> None:
        started = time.monotonic()
        await self.load_keys()
        self.start_ms["keys"] = round((time.monotonic() - started) * 1000, 1)
        await self.logs.start()
        await self.proxy.start(self.render())
        self.loaded_keys = self.keys
        self.start_ms["proxy"] = round((time.monotonic() - started) * 1000, 1)

    async def stop(self) -> None:
        await self.proxy.stop()
        self.logs.close()
        shutil.rmtree(self.sockets, ignore_errors=True)

    # -- the lab's faults on the gateway itself ----------------------------------

    async def stop_proxy(self) -> None:
        """Stop the edge proxy (every route loses its front door)."""
        async with self._lock:
            await self.proxy.stop()

    async def start_proxy(self) -> float:
        """Start it again with the current configuration; return the milliseconds it took."""
        async with self._lock:
            started = time.monotonic()
            if self.proxy.pid is None:
                await self.proxy.start(self.render())
            return (time.monotonic() - started) * 1000

    async def set_delay(self, delay_ms: int) -> dict:
        """Make the gateway hold every request ``delay_ms`` before routing it (0 clears)."""
        async with self._lock:
            self.delay_ms = max(0, min(int(delay_ms), 10_000))
            reload_ms = await self.proxy.reload(self.render())
            return {"delay_ms": self.delay_ms, "reload_ms": round(reload_ms, 1)}

    # -- policy -------------------------------------------------------------------

    def preview(self, text: str) -> tuple[GatewayPolicy, str, str]:
        """Validate and render a policy; return it, its config and the diff against the running one."""
        policy = parse_policy(text)
        proposed = self.render(policy)
        diff = "".join(
            difflib.unified_diff(
                self.proxy.config_text.splitlines(keepends=True),
                proposed.splitlines(keepends=True),
                fromfile=f"gateway.cfg (v{self.version}, running)",
                tofile="gateway.cfg (proposed)",
            )
        )
        return policy, proposed, diff

    async def apply(self, text: str) -> dict:
        """Validate, render and apply a policy with a hitless reload; return the diff and timings."""
        async with self._lock:
            policy, proposed, diff = self.preview(text)
            started = time.monotonic()
            reload_ms = 0.0
            if proposed != self.proxy.config_text:
                try:
                    reload_ms = await self.proxy.reload(proposed)
                except ConfigInvalid as error:  # our renderer's bug, not the learner's
                    raise GatewayPolicyInvalid({"haproxy": [str(error)]}) from None
                self.version += 1
            self.policy, self.policy_text = policy, text
            applied = {
                "version": self.version,
                "changed": bool(diff),
                "diff": diff.replace(
                    f"(v{self.version - 1}, running)", f"(v{self.version - 1})"
                ).replace("(proposed)", f"(v{self.version})"),
                "reload_ms": round(reload_ms, 1),
                "applied_in_ms": round((time.monotonic() - started) * 1000, 1),
                "routes": [route.name for route in policy.routes],
                "at": time.time(),
            }
            self.history.append({k: v for k, v in applied.items() if k != "diff"})
            return applied

    # -- state ---------------------------------------------------------------------

    async def totals(self) -> dict:
        """Return HAProxy's own counters per frontend and route back end."""
        try:
            return runtime_api.proxy_totals(
                await runtime_api.command(self.proxy.stats_socket, "show stat")
            )
        except (TimeoutError, OSError, ValueError) as error:
            return {"error": str(error)}

    async def rate_table(self, name: str) -> str:
        """Return HAProxy's own view of one rate limit's stick table (``show table``)."""
        return await runtime_api.command(self.proxy.stats_socket, f"show table ratelimit_{name}")

    def describe(self) -> dict:
        return {
            "listen": f"127.0.0.1:{self.listen_port}",
            "running": self.proxy.pid is not None,
            "version": self.version,
            "policy": self.policy_text,
            "routes": [route.name for route in self.policy.routes],
            "keys": [
                {"kid": key.kid, "alg": key.algorithm, "path": str(key.path)}
                for key in self.loaded_keys
            ],
            "backends": self.backend_ports(),
            "delay_ms": self.delay_ms,
            "start_ms": self.start_ms,
            "stats_socket": str(self.proxy.stats_socket),
            "master_pid": self.proxy.pid,
            "worker_pids": self.proxy.worker_pids(),
            "reloads": self.proxy.reloads,
            "config_lines": len(self.proxy.config_text.splitlines()),
            "history": self.history,
            "log_records": self.records,
            "by_route": dict(self.by_route),
            "by_verdict": dict(self.by_verdict),
        }

    # -- telemetry: log lines to spans ----------------------------------------------

    def _on_record(self, record: dict) -> None:
        if record.get("event") == "connection-error":
            return
        self.records += 1
        for key in SAMPLE_FIELDS:  # HAProxy logs a sample it could not fetch as "-"
            if record.get(key) == "-":
                record[key] = ""
        route = str(record.get("route") or "")
        verdict = str(record.get("auth") or "")
        status = int(record.get("st") or 0)
        self.by_route[route or "(none)"] += 1
        self.by_verdict[verdict or "none"] += 1
        refused_by_gateway = str(record.get("srv") or "") in ("", "<NOSRV>")
        self.recent.append(
            {
                "route": route,
                "status": status,
                "auth": verdict,
                "refused": refused_by_gateway,
                "ta": record.get("ta"),
            }
        )
        attributes: dict = {
            "gateway.route": route or "(no route)",
            "gateway.auth": verdict or "none",
            "gateway.refused": refused_by_gateway,
        }
        if record.get("rate"):
            attributes["gateway.rate_limit.rate"] = record.get("rate")
            attributes["gateway.rate_limit.key"] = record.get("rlkey")
        if record.get("sub"):
            attributes["enduser.id"] = record.get("sub")
        if record.get("fault"):
            attributes["gateway.fault"] = record["fault"]
        backend = next((r.backend for r in self.policy.routes if r.name == route), None)
        if backend and not refused_by_gateway:
            attributes["server.port"] = self.plan.ports[backend][
                0
            ]  # names the peer on the lifeline
        span = span_of_record(
            record,
            service="gateway",
            kind="server",
            name=f"{record.get('m') or ''} {route or 'no route'}".strip(),
            attributes=attributes,
        )
        if span is not None:
            self._put_span(span)
