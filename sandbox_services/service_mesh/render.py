"""Render each sidecar's HAProxy configuration from the mesh policy: the control plane's output.

What istiod does for Envoy (listeners, clusters, routes pushed over xDS),
done here as one HAProxy file per sidecar. Comments in the output say which
policy field produced which lines, so the diff the learner sees reads as
"what the control plane did for you".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox_services.proxy import config as proxy_config
from sandbox_services.proxy.certs import dns_name

from .policy import (
    ISTIO_DEFAULT_RETRIES,
    LOAD_BALANCERS,
    DestinationPolicy,
    MeshPolicy,
    Retries,
    RoutePolicy,
    haproxy_retry_on,
)
from .topology import Sidecar

DEFAULT_SERVER_TIMEOUT_MS = 30_000
NO_RETRIES = Retries(attempts=0, per_try_timeout_ms=None, retry_on=(), explicit=True)
PROBE_MS = 100  # health probe interval of an ejected replica
UNREACHABLE_FALL = 100_000  # probes never eject; observed responses do


@dataclass(frozen=True)
class MeshFiles:
    """Where one sandbox's mesh keeps its files (sockets under a short path: 108-byte limit)."""

    sandbox_id: str
    config_directory: Path
    socket_directory: Path
    ca_path: Path

    def cert_path(self, workload: str) -> Path:
        return self.ca_path.parent / f"{workload}.pem"

    @property
    def log_socket(self) -> Path:
        return self.socket_directory / "log.sock"

    def stats_socket(self, sidecar: Sidecar) -> Path:
        return self.socket_directory / f"{sidecar.name}.stats.sock"

    def abstract(self, sidecar: Sidecar, purpose: str) -> str:
        # Abstract sockets share one namespace per host: the sandbox id keeps them apart.
        return f"abns@lab-{self.sandbox_id[:12]}-{sidecar.name}-{purpose}"


def render_sidecar(
    sidecar: Sidecar,
    *,
    sidecars: list[Sidecar],
    policy: MeshPolicy,
    files: MeshFiles,
    running: dict[str, set[int]],
) -> str:
    """Return the whole HAProxy configuration of one sidecar.

    ``running`` maps each app service to its running replicas: the endpoints
    the control plane knows of (Istio's EDS); the others start in maintenance.
    """
    uses_delay = any(
        (route.fault is not None and route.fault.delay_percent > 0)
        for host, route in policy.routes.items()
        if host in sidecar.outbound
    )
    lines = [
        f"# Sidecar of {sidecar.name}, rendered by the lab's control plane. Do not edit:",
        "# the next policy change replaces it.",
        *proxy_config.global_section(
            stats_socket=files.stats_socket(sidecar), log_socket=files.log_socket
        ),
    ]
    if uses_delay:
        lines.insert(
            lines.index("") if "" in lines else len(lines), proxy_config.lua_load("delay.lua")
        )
    lines += proxy_config.defaults_section(workload=sidecar.name)
    if sidecar.inbound_port is not None:
        lines += ["", *_inbound(sidecar, policy, files)]
    for host, port in sidecar.outbound.items():
        lines += ["", *_outbound(sidecar, host, port, sidecars, policy, files, running)]
    return "\n".join(lines) + "\n"


def _tls_bind(sidecar: Sidecar, files: MeshFiles) -> str:
    return (
        f"ssl crt {files.cert_path(sidecar.workload)} ca-file {files.ca_path} verify required"
        " alpn http/1.1"
    )


def _app_frontend(name: str, bind: str, sidecar: Sidecar, note: str) -> list[str]:
    return [
        f"frontend {name}",
        f"    # {note}",
        f"    bind {bind}",
        *proxy_config.trace_rules(),
        # The caller's sidecar logs every request (the edge's counts and p99); this
        # hop's line only makes a span, so an untraced request writes none.
        "    http-request set-log-level silent unless { var(txn.tp) -m found }",
        "    default_backend app",
    ]


def _inbound(sidecar: Sidecar, policy: MeshPolicy, files: MeshFiles) -> list[str]:
    mode = policy.mtls(sidecar.workload)
    address = f"127.0.0.1:{sidecar.inbound_port}"
    lines = [f"# Inbound: PeerAuthentication mtls.mode {mode} for {sidecar.workload}"]
    if mode == "STRICT":
        lines += _app_frontend(
            "inbound",
            f"{address} {_tls_bind(sidecar, files)}",
            sidecar,
            "STRICT: only a client with a certificate from the mesh CA gets past the handshake",
        )
    elif mode == "DISABLE":
        lines += _app_frontend("inbound", address, sidecar, "DISABLE: plaintext only")
    else:
        tls, plain = files.abstract(sidecar, "tls"), files.abstract(sidecar, "plain")
        lines += [
            "frontend inbound",
            "    # PERMISSIVE: peek at the first bytes; a TLS ClientHello goes to the mTLS",
            "    # listener, anything else to the plaintext one (Istio sniffs the same way).",
            "    mode tcp",
            "    no log",
            '    log-format "tcp"',  # the default line's HTTP fields are refused in TCP mode
            f"    bind {address}",
            "    tcp-request inspect-delay 2s",
            "    tcp-request content accept if { req.ssl_hello_type 1 }",
            "    tcp-request content accept if { req.len gt 0 }",
            "    use_backend inbound_tls if { req.ssl_hello_type 1 }",
            "    default_backend inbound_plain",
            "",
            "backend inbound_tls",
            "    mode tcp",
            f"    server mtls {tls} send-proxy-v2",
            "",
            "backend inbound_plain",
            "    mode tcp",
            f"    server plaintext {plain} send-proxy-v2",
            "",
            *_app_frontend(
                "inbound_mtls", f"{tls} accept-proxy {_tls_bind(sidecar, files)}", sidecar, "mTLS"
            ),
            "",
            *_app_frontend(
                "inbound_plaintext", f"{plain} accept-proxy", sidecar, "plaintext, accepted"
            ),
        ]
    lines += [
        "",
        "backend app",
        f"    server app 127.0.0.1:{sidecar.app_port}",
    ]
    return lines


def _server_lines(
    sidecar: Sidecar,
    host: str,
    sidecars: list[Sidecar],
    policy: MeshPolicy,
    files: MeshFiles,
    running: dict[str, set[int]],
) -> list[str]:
    destination = policy.destination(host)
    outlier = destination.outlier
    tls = policy.mtls(host) != "DISABLE"  # Istio's auto-mTLS: TLS unless the server refuses it
    targets = [other for other in sidecars if other.workload == host]
    lines = []
    shares = connection_shares(destination.max_connections, targets, running.get(host, set()))
    for target in targets:
        words = [f"    server {target.name} 127.0.0.1:{target.inbound_port}"]
        if tls:
            words.append(
                f"ssl crt {files.cert_path(sidecar.workload)} ca-file {files.ca_path}"
                f" verify required verifyhost {dns_name(files.sandbox_id, host)} alpn http/1.1"
            )
        if outlier is not None:
            # Ejected for baseEjectionTime: once marked down, it must pass this many
            # probes in a row, one every PROBE_MS, to come back. Envoy's outlier
            # detection is passive, so a failed probe of a replica in rotation must
            # not eject it: only responses do (fall is out of reach).
            rise = max(1, round(outlier.base_ejection_ms / PROBE_MS))
            words.append(
                f"check inter {outlier.interval_ms}ms fastinter {PROBE_MS}ms"
                f" downinter {PROBE_MS}ms rise {rise} fall {UNREACHABLE_FALL}"
                f" observe layer7 error-limit {outlier.consecutive_5xx} on-error mark-down"
            )
        if target.name in shares:
            words.append(f"maxconn {shares[target.name]}")
        if target.replica not in running.get(host, set()):
            words.append("disabled")  # not an endpoint now: in maintenance until it runs
        lines.append(" ".join(words))
    return lines


def connection_shares(
    max_connections: int | None, targets: list[Sidecar], running: set[int]
) -> dict[str, int]:
    """Split a host's ``maxConnections`` into HAProxy's per-server ``maxconn``, by server name.

    Envoy counts the limit for the whole host; HAProxy limits each server. The
    running replicas share it (the first ones take the remainder), so the sum
    is the limit whenever it is at least the number of replicas; a replica that
    is not running keeps a share of 1 until the endpoints change.
    """
    if max_connections is None:
        return {}
    serving = [target for target in targets if target.replica in running]
    shares = {target.name: 1 for target in targets}
    for index, target in enumerate(serving):
        share = max_connections // len(serving) + (index < max_connections % len(serving))
        shares[target.name] = max(1, share)
    return shares


def _connection_pool(
    destination: DestinationPolicy, replicas: int, queue_timeout_ms: int
) -> list[str]:
    lines = []
    if destination.max_connections is not None:
        limit = destination.max_connections
        total = max(limit, replicas)
        lines += [
            f"    # connectionPool.tcp.maxConnections {limit}: Envoy counts it for the whole host,",
            f"    # HAProxy per server, so the {replicas} running replica(s) share it (maxconn below,"
            f" {total} in all).",
            "    # A request that finds every server busy waits in this backend's queue, as in",
            "    # Envoy's pending queue; Envoy gives it no timer of its own, only the route's timeout.",
            f"    timeout queue {queue_timeout_ms}ms",
        ]
    if destination.max_pending_requests is not None:
        pending = destination.max_pending_requests
        lines += [
            f"    # connectionPool.http.http1MaxPendingRequests {pending}: with that many already",
            "    # waiting, the next request is refused at once with 503, as Envoy's overflow is.",
            "    # (HAProxy's per-server maxqueue would not refuse: it sends the excess to the",
            "    # backend's queue, which has no bound.) Logged with termination state PR.",
            f"    http-request deny deny_status 503 if {{ queue() ge {pending} }}",
        ]
    return lines


def _outbound(
    sidecar: Sidecar,
    host: str,
    port: int,
    sidecars: list[Sidecar],
    policy: MeshPolicy,
    files: MeshFiles,
    running: dict[str, set[int]],
) -> list[str]:
    route: RoutePolicy = policy.route(host)
    destination = policy.destination(host)
    # A route with a fault gets no retries and no timeout, as in Istio.
    retries = route.retries or (NO_RETRIES if route.fault else ISTIO_DEFAULT_RETRIES)
    deadline_layer = route.timeout_ms is not None and retries.attempts > 0 and route.retries
    lines = [f"# Outbound to {host}: the app's plaintext calls enter here"]
    lines += [
        f"frontend outbound_{host}",
        f"    bind 127.0.0.1:{port}",
        *proxy_config.trace_rules(),
    ]
    if route.fault is not None:
        fault = route.fault
        lines.append(
            f"    # VirtualService fault: delay {fault.delay_percent}% by {fault.delay_ms} ms,"
            f" abort {fault.abort_percent}% with {fault.abort_status}"
        )
        lines += proxy_config.fault_rules(
            delay_percent=fault.delay_percent,
            delay_ms=fault.delay_ms,
            abort_percent=fault.abort_percent,
            abort_status=fault.abort_status,
        )
    if deadline_layer:
        inner = files.abstract(sidecar, f"retry-{host}")
        lines += [
            f"    default_backend {host}_deadline",
            "",
            f"# VirtualService timeout {route.timeout_ms} ms: the whole call, every try included.",
            "# HAProxy has no deadline across retries, so an outer layer holds it and an",
            "# inner layer retries.",
            f"backend {host}_deadline",
            f"    timeout server {route.timeout_ms}ms",
            "    retries 0",
            f"    server tries {inner}",
            "",
            f"frontend {host}_tries",
            f"    bind {inner}",
            *proxy_config.trace_rules(),
            f"    default_backend {host}",
        ]
    else:
        lines.append(f"    default_backend {host}")
    per_try_ms = retries.per_try_timeout_ms if retries.attempts > 0 else None
    server_timeout = per_try_ms or (None if deadline_layer else route.timeout_ms)
    balance = LOAD_BALANCERS[destination.load_balancer]
    lines += [
        "",
        f"backend {host}",
        f"    # DestinationRule loadBalancer.simple {destination.load_balancer}",
        f"    balance {balance}",
    ]
    if route.fault is not None:
        lines.append("    # A route with a fault: no retries, as Istio does")
    elif retries.explicit:
        lines.append(
            f"    # VirtualService retries: attempts {retries.attempts},"
            f" retryOn {','.join(retries.retry_on)}"
            + (f", perTryTimeout {per_try_ms} ms" if per_try_ms else "")
        )
    else:
        lines.append(
            "    # No retries in the VirtualService: Istio's default, 2 attempts on connect-failure"
        )
    if retries.attempts > 0:
        lines += [
            f"    retries {retries.attempts}",
            f"    retry-on {' '.join(haproxy_retry_on(retries))}",
            "    option redispatch 1",  # each retry to another replica, as Istio's previous_hosts
        ]
    else:
        lines += ["    retries 0", "    retry-on none"]
    if server_timeout:
        lines.append(f"    timeout server {server_timeout}ms")
    else:
        lines.append(
            f"    timeout server {DEFAULT_SERVER_TIMEOUT_MS}ms  # no timeout in the policy"
        )
    if destination.outlier is not None:
        outlier = destination.outlier
        lines += [
            f"    # outlierDetection: {outlier.consecutive_5xx} consecutive 5xx eject a replica for"
            f" {outlier.base_ejection_ms} ms,",
            f"    # then it is readmitted after passing {max(1, round(outlier.base_ejection_ms / PROBE_MS))}"
            f" probes {PROBE_MS} ms apart (Envoy readmits",
            "    # without probing and multiplies the time by the number of ejections). interval",
            "    # becomes the probe interval of a healthy replica: HAProxy judges every response",
            "    # as it comes, where Envoy sweeps every interval.",
            "    option httpchk GET /healthz",
            "    http-check expect status 200",
        ]
    lines += _connection_pool(
        destination, len(running.get(host, set())), server_timeout or DEFAULT_SERVER_TIMEOUT_MS
    )
    lines += _server_lines(sidecar, host, sidecars, policy, files, running)
    return lines
