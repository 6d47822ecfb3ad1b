"""Mesh policy as Istio writes it (DestinationRule, VirtualService, PeerAuthentication), validated.

A learner edits YAML documents in the shape of Istio's resources. This module
reads them into plain values the control plane renders into HAProxy
configuration, and refuses, naming the field, anything malformed or anything
HAProxy cannot do faithfully: a refused field says why, it is never
silently approximated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import yaml

HOSTS = ("frontend", "backend")  # the destinations of this lesson's mesh
WORKLOADS = ("client", "frontend", "backend")
LOAD_BALANCERS = {"ROUND_ROBIN": "roundrobin", "LEAST_REQUEST": "leastconn", "RANDOM": "random(1)"}
MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE")

# Envoy's retryOn conditions HAProxy's retry-on can express, and how.
RETRY_ON = {
    "5xx": ("conn-failure", "empty-response", "500", "501", "502", "503", "504"),
    "gateway-error": ("502", "503", "504"),
    "connect-failure": ("conn-failure",),
    "reset": ("empty-response",),
}
# The ones it cannot, and why (the validation error says so).
RETRY_ON_REFUSED = {
    "refused-stream": "HTTP/2 REFUSED_STREAM has no HAProxy retry-on condition",
    "retriable-4xx": "Envoy retries 409 here; HAProxy's retry-on takes only 401, 403, 404, 408 and 425",
    "retriable-status-codes": "needs Envoy's x-envoy-retriable-status-codes header, which HAProxy does not read",
    "retriable-headers": "HAProxy cannot retry on a response header",
    "envoy-ratelimited": "an Envoy rate-limit header; HAProxy has no such condition",
}
GRPC_RETRY_ON = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
GRPC_REASON = (
    "a gRPC status arrives as HTTP 200 with grpc-status in the trailers, and HAProxy's"
    " retry-on sees only connection failures and HTTP status codes: no faithful equivalent"
)
KNOWN_KINDS = ("DestinationRule", "VirtualService", "PeerAuthentication")


class PolicyInvalid(ValueError):
    """The policy cannot be applied; ``errors`` maps each field's path to its problems."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}")


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx: int
    interval_ms: int
    base_ejection_ms: int
    max_ejection_percent: int


@dataclass(frozen=True)
class DestinationPolicy:
    """A DestinationRule's trafficPolicy for one host."""

    load_balancer: str = "LEAST_REQUEST"  # what recent Istio releases use when none is named
    max_connections: int | None = None
    max_pending_requests: int | None = None
    outlier: OutlierDetection | None = None


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout_ms: int | None
    retry_on: tuple[str, ...]  # Envoy's names, as the learner wrote them
    explicit: bool = True  # False: Istio's default policy, not the learner's


@dataclass(frozen=True)
class Fault:
    delay_percent: float = 0.0
    delay_ms: int = 0
    abort_percent: float = 0.0
    abort_status: int = 503


@dataclass(frozen=True)
class RoutePolicy:
    """A VirtualService's first http route for one host."""

    timeout_ms: int | None = None
    retries: Retries | None = None
    fault: Fault | None = None


# Istio retries twice on connection failures when a VirtualService says nothing
# (its default also names gRPC and HTTP/2 conditions HAProxy cannot express; it
# retried 503s too until 1.24, which dropped them as unsafe for non-idempotent calls).
ISTIO_DEFAULT_RETRIES = Retries(
    attempts=2, per_try_timeout_ms=None, retry_on=("connect-failure",), explicit=False
)


@dataclass(frozen=True)
class MeshPolicy:
    destinations: dict[str, DestinationPolicy] = field(default_factory=dict)
    routes: dict[str, RoutePolicy] = field(default_factory=dict)
    mtls_default: str = "STRICT"
    mtls_by_workload: dict[str, str] = field(default_factory=dict)

    def destination(self, host: str) -> DestinationPolicy:
        return self.destinations.get(host, DestinationPolicy())

    def route(self, host: str) -> RoutePolicy:
        return self.routes.get(host, RoutePolicy())

    def mtls(self, workload: str) -> str:
        return self.mtls_by_workload.get(workload, self.mtls_default)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


def haproxy_retry_on(retries: Retries) -> list[str]:
    """Return HAProxy's retry-on keywords for a validated retry policy."""
    words: list[str] = []
    for condition in retries.retry_on:
        for word in RETRY_ON[condition]:
            if word not in words:
                words.append(word)
    if retries.per_try_timeout_ms is not None and "response-timeout" not in words:
        words.append("response-timeout")  # Envoy retries a try that ran out of time
    return words


class _Reader:
    """Walk one document, collecting every problem under its field path."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def error(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def mapping(self, value: object, path: str, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, "must be a mapping")
            return {}
        for key in value:
            if key not in allowed:
                self.error(
                    f"{path}.{key}",
                    f"unknown field; this lab understands {', '.join(allowed)}",
                )
        return value

    def integer(self, value: object, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, "must be a whole number")
            return None
        if not low <= value <= high:
            self.error(path, f"must be between {low} and {high}")
            return None
        return value

    def percent(self, value: object, path: str) -> float | None:
        if isinstance(value, dict):
            value = self.mapping(value, path, ("value",)).get("value")
            path = f"{path}.value"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.error(path, "must be a number from 0 to 100")
            return None
        if not 0 <= value <= 100:
            self.error(path, "must be between 0 and 100")
            return None
        if round(value * 100) != value * 100 and abs(round(value * 100) - value * 100) > 1e-6:
            self.error(path, "HAProxy draws whole hundredths of a percent; use at most 2 decimals")
            return None
        return float(value)

    def duration_ms(self, value: object, path: str, low_ms: int, high_ms: int) -> int | None:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            self.error(path, 'must be a duration such as "250ms", "1.5s" or "1m"')
            return None
        number, unit = float(match.group(1)), match.group(2)
        milliseconds = number * {"ms": 1, "s": 1000, "m": 60_000}[unit]
        if milliseconds != int(milliseconds):
            self.error(path, "HAProxy's timers count whole milliseconds")
            return None
        if not low_ms <= milliseconds <= high_ms:
            self.error(path, f"must be between {low_ms} ms and {high_ms} ms")
            return None
        return int(milliseconds)

    def host(self, value: object, path: str) -> str | None:
        if value not in HOSTS:
            self.error(path, f"must name a host of this mesh: {', '.join(HOSTS)}")
            return None
        return str(value)


def parse_policy(text: str) -> MeshPolicy:
    """Read the learner's YAML documents; raise PolicyInvalid naming every bad field."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "yaml"
        raise PolicyInvalid(
            {where: [f"not valid YAML: {getattr(error, 'problem', error)}"]}
        ) from None
    reader = _Reader()
    destinations: dict[str, DestinationPolicy] = {}
    routes: dict[str, RoutePolicy] = {}
    mtls_default = "STRICT"
    mtls_by_workload: dict[str, str] = {}
    for index, document in enumerate(documents):
        where = f"documents[{index}]"
        if not isinstance(document, dict):
            reader.error(where, "must be a mapping with kind and spec")
            continue
        kind = document.get("kind")
        where = f"{kind}[{index}]" if isinstance(kind, str) else where
        reader.mapping(document, where, ("apiVersion", "kind", "metadata", "spec"))
        if kind not in KNOWN_KINDS:
            reader.error(f"{where}.kind", f"must be one of {', '.join(KNOWN_KINDS)}")
            continue
        spec = document.get("spec")
        if not isinstance(spec, dict):
            reader.error(f"{where}.spec", "is required and must be a mapping")
            continue
        if kind == "DestinationRule":
            host, policy = _destination_rule(reader, spec, f"{where}.spec")
            if host is not None and policy is not None:
                if host in destinations:
                    reader.error(f"{where}.spec.host", f"a second DestinationRule for {host}")
                destinations[host] = policy
        elif kind == "VirtualService":
            for host, route in _virtual_service(reader, spec, f"{where}.spec"):
                if host in routes:
                    reader.error(f"{where}.spec.hosts", f"a second VirtualService for {host}")
                routes[host] = route
        else:
            workload, mode = _peer_authentication(reader, spec, f"{where}.spec")
            if mode is not None:
                if workload is None:
                    mtls_default = mode
                else:
                    mtls_by_workload[workload] = mode
    if reader.errors:
        raise PolicyInvalid(reader.errors)
    return MeshPolicy(destinations, routes, mtls_default, mtls_by_workload)


def _destination_rule(
    reader: _Reader, spec: dict, where: str
) -> tuple[str | None, DestinationPolicy | None]:
    reader.mapping(spec, where, ("host", "trafficPolicy"))
    host = reader.host(spec.get("host"), f"{where}.host")
    traffic = reader.mapping(
        spec.get("trafficPolicy"),
        f"{where}.trafficPolicy",
        ("loadBalancer", "connectionPool", "outlierDetection"),
    )
    where = f"{where}.trafficPolicy"
    load_balancer = "LEAST_REQUEST"
    if "loadBalancer" in traffic:
        balancer = reader.mapping(
            traffic["loadBalancer"], f"{where}.loadBalancer", ("simple", "consistentHash")
        )
        if "consistentHash" in balancer:
            reader.error(
                f"{where}.loadBalancer.consistentHash",
                "not offered in this lab (HAProxy's balance hdr/source would do it; no experiment needs it)",
            )
        simple = balancer.get("simple", "LEAST_REQUEST")
        if simple not in LOAD_BALANCERS:
            reader.error(
                f"{where}.loadBalancer.simple", f"must be one of {', '.join(LOAD_BALANCERS)}"
            )
        else:
            load_balancer = simple
    max_connections = max_pending = None
    if "connectionPool" in traffic:
        pool = reader.mapping(traffic["connectionPool"], f"{where}.connectionPool", ("tcp", "http"))
        tcp = reader.mapping(
            pool.get("tcp"), f"{where}.connectionPool.tcp", ("maxConnections", "connectTimeout")
        )
        http = reader.mapping(
            pool.get("http"),
            f"{where}.connectionPool.http",
            ("http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection"),
        )
        if "connectTimeout" in tcp:
            reader.error(
                f"{where}.connectionPool.tcp.connectTimeout",
                "not offered in this lab: the sidecars connect over loopback in microseconds",
            )
        if "maxConnections" in tcp:
            max_connections = reader.integer(
                tcp["maxConnections"], f"{where}.connectionPool.tcp.maxConnections", 1, 10_000
            )
        if "http1MaxPendingRequests" in http:
            max_pending = reader.integer(
                http["http1MaxPendingRequests"],
                f"{where}.connectionPool.http.http1MaxPendingRequests",
                1,
                10_000,
            )
        for unsupported in ("http2MaxRequests", "maxRequestsPerConnection"):
            if unsupported in http:
                reader.error(
                    f"{where}.connectionPool.http.{unsupported}",
                    "no faithful HAProxy equivalent in this lab's HTTP/1.1 sidecars",
                )
    outlier = None
    if "outlierDetection" in traffic:
        outlier = _outlier(reader, traffic["outlierDetection"], f"{where}.outlierDetection")
    if host is None:
        return None, None
    return host, DestinationPolicy(load_balancer, max_connections, max_pending, outlier)


def _outlier(reader: _Reader, value: object, where: str) -> OutlierDetection | None:
    allowed = ("consecutive5xxErrors", "interval", "baseEjectionTime", "maxEjectionPercent")
    outlier = reader.mapping(value, where, (*allowed, "consecutiveGatewayErrors"))
    if "consecutiveGatewayErrors" in outlier:
        reader.error(
            f"{where}.consecutiveGatewayErrors",
            "HAProxy's observe layer7 counts 500 and 502-504 alike; it cannot count 502-504 apart",
        )
    errors = reader.integer(
        outlier.get("consecutive5xxErrors", 5), f"{where}.consecutive5xxErrors", 1, 100
    )
    interval = reader.duration_ms(outlier.get("interval", "10s"), f"{where}.interval", 100, 60_000)
    base = reader.duration_ms(
        outlier.get("baseEjectionTime", "30s"), f"{where}.baseEjectionTime", 100, 300_000
    )
    # Absent, Istio caps ejections at 10%; HAProxy has no cap, so the rendered
    # configuration says that it ejects up to all of them.
    percent = reader.integer(
        outlier.get("maxEjectionPercent", 100), f"{where}.maxEjectionPercent", 0, 100
    )
    if percent is not None and percent != 100:
        reader.error(
            f"{where}.maxEjectionPercent",
            "HAProxy puts no cap on how many servers its checks mark down, so only 100 is faithful",
        )
    if None in (errors, interval, base, percent):
        return None
    return OutlierDetection(errors, interval, base, percent)


def _virtual_service(reader: _Reader, spec: dict, where: str) -> list[tuple[str, RoutePolicy]]:
    reader.mapping(spec, where, ("hosts", "http"))
    hosts = spec.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        reader.error(f"{where}.hosts", "must list at least one host")
        hosts = []
    names = [reader.host(host, f"{where}.hosts[{i}]") for i, host in enumerate(hosts)]
    http = spec.get("http")
    if not isinstance(http, list) or len(http) != 1:
        reader.error(f"{where}.http", "this lab takes exactly one http route per VirtualService")
        return []
    where = f"{where}.http[0]"
    route = reader.mapping(http[0], where, ("route", "timeout", "retries", "fault", "name"))
    destinations = route.get("route")
    if destinations is not None:
        if not isinstance(destinations, list) or len(destinations) != 1:
            reader.error(f"{where}.route", "this lab routes to one destination, the host itself")
        else:
            target = reader.mapping(destinations[0], f"{where}.route[0]", ("destination",))
            destination = reader.mapping(
                target.get("destination"), f"{where}.route[0].destination", ("host",)
            )
            if destination.get("host") not in [name for name in names if name]:
                reader.error(
                    f"{where}.route[0].destination.host",
                    "must be the VirtualService's own host (traffic shifting is not in this lab)",
                )
    timeout = None
    if "timeout" in route:
        timeout = reader.duration_ms(route["timeout"], f"{where}.timeout", 1, 120_000)
    retries = None
    if "retries" in route:
        retries = _retries(reader, route["retries"], f"{where}.retries")
    fault = None
    if "fault" in route:
        fault = _fault(reader, route["fault"], f"{where}.fault")
    if fault is not None and (timeout is not None or retries is not None):
        reader.error(
            f"{where}.fault",
            "Istio enables neither timeouts nor retries on a route with a fault"
            " (its VirtualService reference says so): put them on a route without one",
        )
    if retries is not None and retries.attempts > 0 and timeout is not None:
        per_try = retries.per_try_timeout_ms
        if per_try is None:
            reader.error(
                f"{where}.retries.perTryTimeout",
                "set it with an overall timeout: the lab enforces the overall deadline in an"
                " outer layer and each try's in an inner one",
            )
        elif per_try > timeout:
            reader.error(f"{where}.retries.perTryTimeout", "is longer than the overall timeout")
    policy = RoutePolicy(timeout, retries, fault)
    return [(name, policy) for name in names if name is not None]


def _retries(reader: _Reader, value: object, where: str) -> Retries | None:
    retries = reader.mapping(value, where, ("attempts", "perTryTimeout", "retryOn"))
    attempts = reader.integer(retries.get("attempts", 2), f"{where}.attempts", 0, 10)
    per_try = None
    if "perTryTimeout" in retries:
        per_try = reader.duration_ms(retries["perTryTimeout"], f"{where}.perTryTimeout", 1, 60_000)
    raw = retries.get("retryOn", "connect-failure")
    if not isinstance(raw, str):
        reader.error(f"{where}.retryOn", 'must be a comma-separated string such as "5xx,reset"')
        return None
    conditions = tuple(part.strip() for part in raw.split(",") if part.strip())
    valid = True
    for condition in conditions:
        if condition in GRPC_RETRY_ON:
            reader.error(f"{where}.retryOn", f"{condition!r}: {GRPC_REASON}")
            valid = False
        elif condition in RETRY_ON_REFUSED:
            reader.error(f"{where}.retryOn", f"{condition!r}: {RETRY_ON_REFUSED[condition]}")
            valid = False
        elif condition not in RETRY_ON:
            reader.error(
                f"{where}.retryOn",
                f"{condition!r} is not an Envoy retry condition this lab knows"
                f" ({', '.join(RETRY_ON)})",
            )
            valid = False
    if attempts is None or not valid or (per_try is None and "perTryTimeout" in retries):
        return None
    return Retries(attempts, per_try, conditions or ("connect-failure",))


def _fault(reader: _Reader, value: object, where: str) -> Fault | None:
    fault = reader.mapping(value, where, ("delay", "abort"))
    delay_percent = abort_percent = 0.0
    delay_ms = 0
    abort_status = 503
    if "delay" in fault:
        delay = reader.mapping(
            fault["delay"], f"{where}.delay", ("percentage", "fixedDelay", "percent")
        )
        if "percent" in delay:
            reader.error(f"{where}.delay.percent", "deprecated in Istio; use percentage.value")
        delay_percent = reader.percent(delay.get("percentage", 100), f"{where}.delay.percentage")
        delay_ms = reader.duration_ms(
            delay.get("fixedDelay"), f"{where}.delay.fixedDelay", 1, 10_000
        )
    if "abort" in fault:
        abort = reader.mapping(
            fault["abort"], f"{where}.abort", ("percentage", "httpStatus", "grpcStatus")
        )
        if "grpcStatus" in abort:
            reader.error(
                f"{where}.abort.grpcStatus",
                "HAProxy 2.6 cannot answer with a gRPC status in trailers from a return rule",
            )
        abort_percent = reader.percent(abort.get("percentage", 100), f"{where}.abort.percentage")
        status = abort.get("httpStatus")
        if status is None:
            reader.error(f"{where}.abort.httpStatus", "is required")
        else:
            abort_status = reader.integer(status, f"{where}.abort.httpStatus", 200, 599)
    if None in (delay_percent, delay_ms, abort_percent, abort_status):
        return None
    return Fault(delay_percent or 0.0, delay_ms or 0, abort_percent or 0.0, abort_status or 503)


def _peer_authentication(reader: _Reader, spec: dict, where: str) -> tuple[str | None, str | None]:
    reader.mapping(spec, where, ("selector", "mtls", "portLevelMtls"))
    if "portLevelMtls" in spec:
        reader.error(f"{where}.portLevelMtls", "each sidecar here has one inbound port")
    workload = None
    if "selector" in spec:
        selector = reader.mapping(spec["selector"], f"{where}.selector", ("matchLabels",))
        labels = reader.mapping(
            selector.get("matchLabels"), f"{where}.selector.matchLabels", ("app",)
        )
        workload = labels.get("app")
        if workload not in WORKLOADS:
            reader.error(
                f"{where}.selector.matchLabels.app", f"must name a workload: {', '.join(WORKLOADS)}"
            )
            workload = None
    mtls = reader.mapping(spec.get("mtls"), f"{where}.mtls", ("mode",))
    mode = mtls.get("mode", "STRICT")
    if mode == "UNSET":
        mode = "PERMISSIVE"  # Istio: inherit the parent's, which at mesh level is PERMISSIVE
    if mode not in MTLS_MODES:
        reader.error(f"{where}.mtls.mode", f"must be one of {', '.join(MTLS_MODES)}")
        return workload, None
    return workload, mode
