"""The sidecars' log lines, turned into spans and per-edge counts: the mesh's telemetry.

Envoy's tracer does this inside the proxy; here HAProxy writes one JSON line
a request (``proxy.config``) and this turns each into a span of the caller's
trace, with the peer's identity from the CA that issued the certificate
HAProxy verified. A refused connection (plaintext under STRICT) becomes a
span of its own. Every figure comes from HAProxy's line; none is guessed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox_services.proxy.certs import CertificateAuthority
from sandbox_services.proxy.spans import span_of_record

from .topology import Sidecar

# HAProxy logs a sample it could not fetch as "-".
SAMPLE_FIELDS = ("t0", "t1", "tp", "sid", "tls", "btls", "serial", "sserial", "fault")


@dataclass
class EdgeStats:
    """Requests from one workload to one replica, as the caller's sidecar logged them."""

    requests: int = 0
    errors: int = 0
    retries: int = 0
    tls: int = 0
    recent_ms: deque = field(default_factory=lambda: deque(maxlen=200))
    last_span_id: str | None = None  # the newest traced call, for the graph to point at


class SidecarTelemetry:
    """Read the sidecars' log records; make spans; count each caller -> replica edge."""

    def __init__(
        self,
        sidecars: list[Sidecar],
        ca: CertificateAuthority,
        mtls_mode: Callable[[str], str],
        put_span: Callable[[dict], None],
    ) -> None:
        self.sidecars = sidecars
        self.ca = ca
        self._mtls_mode = mtls_mode
        self._put_span = put_span
        self.edges: dict[tuple[str, str], EdgeStats] = {}
        self.refused: deque = deque(maxlen=50)
        self.records = 0
        self._by_name = {sidecar.name: sidecar for sidecar in sidecars}

    def _sidecar(self, name: str) -> Sidecar | None:
        return self._by_name.get(name)

    def on_record(self, record: dict) -> None:
        """Take one decoded log line of any sidecar."""
        self.records += 1
        for key in SAMPLE_FIELDS:  # HAProxy logs a sample it could not fetch as "-"
            if record.get(key) == "-":
                record[key] = ""
        sidecar = self._sidecar(str(record.get("w")))
        if sidecar is None:
            return
        if record.get("event") == "connection-error":
            self._refusal(sidecar, record)
            return
        frontend = str(record.get("fe") or "")
        server = str(record.get("srv") or "")
        if not record.get("tp"):
            # Untraced (most of a load): counted on its edge, no span to build.
            if not frontend.startswith("inbound"):
                self._count_edge(sidecar, server, record)
            return
        attributes: dict = {"mesh.sidecar": sidecar.name}
        if frontend.startswith("inbound"):
            kind, name = "server", f"inbound {sidecar.workload}"
            issued = self.ca.identity_of(str(record.get("serial") or ""))
            attributes["mtls"] = record.get("tls") == "1"
            if issued is not None:
                attributes["peer.spiffe_id"] = issued.spiffe_id
            elif record.get("tls") != "1":
                attributes["peer.spiffe_id"] = "(plaintext: no identity)"
        else:
            host = str(record.get("be") or "").split("_")[0] or frontend.removeprefix("outbound_")
            kind, name = "client", f"outbound {host}"
            if frontend.endswith("_tries"):
                name = f"tries {host}"
            attributes["mtls"] = record.get("btls") == "1"
            issued = self.ca.identity_of(str(record.get("sserial") or ""))
            if issued is not None:
                attributes["peer.spiffe_id"] = issued.spiffe_id
            target = self._sidecar(server)
            if target is not None and target.inbound_port is not None:
                # The peer on the diagram: the replica's sidecar this hop reached.
                attributes["server.port"] = target.inbound_port
                attributes["mesh.replica"] = target.replica
            self._count_edge(sidecar, server, record)
        if record.get("fault"):
            attributes["mesh.fault"] = record["fault"]
        span = span_of_record(
            record,
            service=f"{sidecar.workload}-sidecar",
            kind=kind,
            name=name,
            attributes=attributes,
        )
        if span is not None:
            self._put_span(span)
            if kind == "client" and (sidecar.workload, server) in self.edges:
                self.edges[(sidecar.workload, server)].last_span_id = span["span_id"]

    def _count_edge(self, sidecar: Sidecar, server: str, record: dict) -> None:
        if not server or server.startswith("<") or server == "tries":
            return
        edge = self.edges.setdefault((sidecar.workload, server), EdgeStats())
        edge.requests += 1
        status = int(record.get("st") or 0)
        if status >= 500 or status <= 0:
            edge.errors += 1
        edge.retries += int(str(record.get("rc") or "0").lstrip("+") or 0)
        edge.tls += record.get("sserial", "") not in ("", "-")
        edge.recent_ms.append(max(int(record.get("ta") or 0), 0))

    def _refusal(self, sidecar: Sidecar, record: dict) -> None:
        """Make a span of a connection the sidecar refused (no TLS under STRICT, a bad cert)."""
        now_ns = (int(record.get("ts") or 0) * 1000 + int(record.get("ms") or 0)) * 1_000_000
        reason = record.get("ssl_err") or record.get("err") or "refused"
        self.refused.append({"sidecar": sidecar.name, "reason": reason, "at_ns": now_ns})
        self._put_span(
            {
                "trace_id": os.urandom(16).hex(),
                "span_id": os.urandom(8).hex(),
                "parent_id": None,
                "service": f"{sidecar.workload}-sidecar",
                "name": f"refused connection to {sidecar.workload}",
                "kind": "server",
                "protocol": "http",
                "start_ns": now_ns,
                "end_ns": now_ns,
                "status": "error",
                "attributes": {
                    "mesh.sidecar": sidecar.name,
                    "mesh.refusal": reason,
                    "mtls.mode": self._mtls_mode(sidecar.workload),
                    "client": record.get("client"),
                },
            }
        )

    def edge_metrics(self) -> list[dict]:
        """Return request rate inputs, error counts and p99 per caller -> replica edge."""
        result = []
        for (caller, server), edge in sorted(self.edges.items()):
            recent = sorted(edge.recent_ms)
            p99 = recent[min(len(recent) - 1, int(len(recent) * 0.99))] if recent else None
            result.append(
                {
                    "from": caller,
                    "to": server,
                    "requests": edge.requests,
                    "errors": edge.errors,
                    "retries": edge.retries,
                    "mtls": edge.tls > 0,
                    "p99_ms": p99,
                    "last_span_id": edge.last_span_id,
                }
            )
        return result
