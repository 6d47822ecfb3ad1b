"""Render the gateway's HAProxy configuration from a validated policy.

One frontend on the gateway's port takes HTTP/1.1 and HTTP/2 (gRPC clients
speak h2 in clear text; HAProxy recognises the preface). The rules run in
the order a reader should follow them in the generated file:

1. trace: read ``traceparent``, take a span id for this hop;
2. pick the route: the first route whose path prefix, host and headers match
   sets ``txn.route``; no route, 404 here;
3. remove claim headers a client may have forged (only the gateway writes them);
4. verify the token of routes that need one; refuse here with 401/403;
5. count the request against the route's rate limit; refuse here with 429;
6. write the verified claims as headers, apply the route's header rules;
7. hand the request to the route's back end (its own timeout).

Requests refused in steps 2-5 never leave the proxy: the back end's own
request counter does not move.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox_services.proxy import config, jwt, ratelimit

from .policy import BACKENDS, CLAIM_HEADERS, GatewayPolicy, Route

WORKLOAD = "gateway"
REALM = "lab-gateway"
# What the gateway adds to the shared log line: the route it chose, its auth
# verdict, the key's request rate when counted, the verified subject.
EXTRA_LOG_FIELDS = (
    ('"route"', '"%[var(txn.route)]"'),
    ('"auth"', '"%[var(txn.auth)]"'),
    ('"rate"', '"%[var(txn.rate)]"'),
    ('"rlkey"', '"%[var(txn.rlkey)]"'),
    ('"sub"', '"%[var(txn.sub)]"'),
)


@dataclass(frozen=True)
class GatewayFiles:
    """Where the gateway's process finds its sockets and the issuer's keys."""

    stats_socket: Path
    log_socket: Path
    keys: tuple[jwt.VerificationKey, ...]


def _is(route: Route) -> str:
    return f"{{ var(txn.route) -m str {route.name} }}"


def _any_of(routes: list[Route]) -> str:
    return "{ var(txn.route) -m str " + " ".join(route.name for route in routes) + " }"


def _match_condition(route: Route) -> str:
    parts = [f"{{ path_beg {route.match.path_prefix} }}"]
    if route.match.host:
        parts.append(f"{{ req.hdr(host),field(1,:) -m str -i {route.match.host} }}")
    parts += [f"{{ req.hdr({name}) -m str {value} }}" for name, value in route.match.headers]
    return " ".join(parts)


def render_gateway(
    policy: GatewayPolicy,
    *,
    files: GatewayFiles,
    listen_port: int,
    backend_ports: dict[str, int],
    delay_ms: int = 0,
) -> str:
    """Return the whole configuration text for the gateway's HAProxy."""
    timeouts = policy.timeouts
    lines = config.global_section(stats_socket=files.stats_socket, log_socket=files.log_socket)
    lines.insert(1, config.lua_load("delay.lua"))
    lines += config.defaults_section(
        workload=WORKLOAD,
        connect_timeout_ms=timeouts.connect_ms,
        extra_log_fields=EXTRA_LOG_FIELDS,
    )
    lines += [f"    timeout server {timeouts.server_ms}ms", ""]
    for limit in policy.rate_limits.values():
        lines += ratelimit.table_section(name=limit.name, period_ms=limit.period_ms)
    lines += [
        "frontend edge",
        f"    bind 127.0.0.1:{listen_port}",
        f"    timeout client {timeouts.client_ms}ms",
        # On a reload the old worker would close idle keep-alive connections at once, and a
        # client that writes on one at that moment loses its request. Instead it answers the
        # next request on each with "Connection: close" (the behaviour before HAProxy 2.4).
        "    option idle-close-on-response",
        "    # 1. this hop's span",
        *config.trace_rules(),
    ]
    if delay_ms > 0:
        lines += [
            "    # the lab's fault: the gateway itself is slow (every route waits)",
            f"    http-request lua.lab_delay {delay_ms}",
        ]
    lines.append("    # 2. the first matching route wins")
    for route in policy.routes:
        lines.append(
            f"    http-request set-var(txn.route) str({route.name})"
            f" if !{{ var(txn.route) -m found }} {_match_condition(route)}"
        )
    lines += [
        "    http-request return status 404 content-type application/json"
        ' string \'{"error":"no route","refused_by":"gateway"}\''
        " unless { var(txn.route) -m found }",
        "    # 3. only the gateway writes identity headers",
        *(f"    http-request del-header {header}" for header in CLAIM_HEADERS.values()),
    ]
    protected = [route for route in policy.routes if route.auth]
    if protected and policy.auth is not None:
        lines.append("    # 4. verify the bearer token (signature, exp, iss, aud), then scopes")
        lines += jwt.jwt_rules(
            when=_any_of(protected),
            algorithm=policy.auth.algorithm,
            keys=list(files.keys),
            issuer=policy.auth.issuer,
            audience=policy.auth.audience,
        )
        for route in protected:
            for scope in route.scopes:
                lines.append(jwt.scope_rule(when=_is(route), scope=scope))
        lines += jwt.refusal_rules(realm=REALM)
    limited = [route for route in policy.routes if route.rate_limit]
    if limited:
        lines.append("    # 5. rate limits: requests per key over a sliding period")
    for name, limit in policy.rate_limits.items():
        routes = [route for route in limited if route.rate_limit == name]
        if routes:
            lines += ratelimit.limit_rules(
                name=name,
                when=_any_of(routes),
                key=limit.key,
                requests=limit.requests,
                period_ms=limit.period_ms,
            )
    if protected:
        lines.append("    # 6. the verified claims, as headers the back end may trust from us only")
        lines += [
            f"    http-request set-header {header} %[var(txn.{claim})] if {{ var(txn.auth) -m str ok }}"
            for claim, header in CLAIM_HEADERS.items()
        ]
    for route in policy.routes:
        for header in route.remove_request_headers:
            lines.append(f"    http-request del-header {header} if {_is(route)}")
        for header, value in route.set_request_headers:
            lines.append(f"    http-request set-header {header} {value} if {_is(route)}")
        for header in route.remove_response_headers:
            lines.append(f"    http-response del-header {header} if {_is(route)}")
        for header, value in route.set_response_headers:
            lines.append(f"    http-response set-header {header} {value} if {_is(route)}")
    lines.append("    # 7. to the route's back end")
    lines += [f"    use_backend route_{route.name} if {_is(route)}" for route in policy.routes]
    lines.append("")
    for route in policy.routes:
        proto = " proto h2" if BACKENDS[route.backend] == "grpc" else ""
        lines += [f"backend route_{route.name}"]
        if route.timeout_ms is not None:
            lines.append(f"    timeout server {route.timeout_ms}ms")
        lines += [
            f"    server {route.backend} 127.0.0.1:{backend_ports[route.backend]}{proto}",
            "",
        ]
    return "\n".join(lines) + "\n"
