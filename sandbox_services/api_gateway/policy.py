"""The gateway's policy as the learner writes it (YAML), validated into plain values.

Four parts: ``routes`` (match, then back end, first match wins), ``auth``
(the issuer and audience a token must name), ``rateLimits`` (named limits
per key that routes refer to) and ``timeouts``. Every error names its field
(``routes[1].match.pathPrefix``). A field HAProxy cannot honour faithfully is
refused with the reason, never approximated: the learner should not believe
the gateway does something it does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from sandbox_services.proxy.jwt import ASYMMETRIC_ALGORITHMS

# The back ends this sandbox's gateway can reach, and how it speaks to each.
BACKENDS = {
    "catalog": "http",
    "reviews": "http",
    "bff": "http",
    "orders": "grpc",
    "orders-v2": "grpc",
}
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# A path, host or header value goes into the config as one word: no spaces, quotes or braces.
SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:/@+=,;~*-]{1,128}$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
RATE_KEYS = re.compile(r"^(header:[A-Za-z0-9-]{1,64}|claim:(sub|client_id)|source)$")
# Headers the gateway writes from verified claims; it removes any a client sent.
CLAIM_HEADERS = {"sub": "x-user-id", "scope": "x-user-scope"}

# Fields with no faithful HAProxy equivalent, and why.
REFUSED = {
    "aggregate": "HAProxy forwards one request to one back end; it does not fan out and merge"
    " answers. Aggregation belongs in the backend-for-frontend: route to backend: bff",
    "retryOnGrpcStatus": "a gRPC status arrives as HTTP 200 with grpc-status in the trailers;"
    " HAProxy's retry-on sees only connection failures and HTTP status codes",
    "jwksUri": "HAProxy 2.6 loads verification keys from files when it starts and cannot fetch"
    " them; the gateway's own process fetches the sandbox issuer's JWKS and writes the files",
    "burst": "HAProxy's stick tables count requests over a sliding period (http_req_rate);"
    " there is no bucket whose burst size could be set",
    "transform": "rewriting a JSON body needs code (Lua or a service), not a header rule",
}
ALGORITHMS_REFUSED = {
    "PS256": "jwt_verify in HAProxy 2.6 does not manage the PS* (RSASSA-PSS) family",
    "PS384": "jwt_verify in HAProxy 2.6 does not manage the PS* (RSASSA-PSS) family",
    "PS512": "jwt_verify in HAProxy 2.6 does not manage the PS* (RSASSA-PSS) family",
    "none": "an unsigned token proves nothing; a verifier that accepts alg none accepts anyone",
    "HS256": "a shared secret would let every service that verifies also mint tokens;"
    " this gateway verifies the issuer's public keys only",
}
RATE_ALGORITHMS_REFUSED = {
    "token-bucket": REFUSED["burst"],
    "leaky-bucket": REFUSED["burst"],
    "fixed-window": "HAProxy's http_req_rate is a sliding estimate over the current and the"
    " previous period, not a counter reset on the clock's boundaries",
}


class GatewayPolicyInvalid(ValueError):
    """The policy cannot be applied; ``errors`` maps each field's path to its problems."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        first = next(iter(errors.items()))
        super().__init__(f"{first[0]}: {first[1][0]}")


@dataclass(frozen=True)
class Match:
    path_prefix: str = "/"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Route:
    name: str
    match: Match
    backend: str
    auth: bool  # a verified token is required
    scopes: tuple[str, ...] = ()
    rate_limit: str | None = None
    timeout_ms: int | None = None
    set_request_headers: tuple[tuple[str, str], ...] = ()
    remove_request_headers: tuple[str, ...] = ()
    set_response_headers: tuple[tuple[str, str], ...] = ()
    remove_response_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Auth:
    issuer: str
    audience: str
    algorithm: str = "ES256"


@dataclass(frozen=True)
class RateLimit:
    name: str
    key: str  # header:<name> | claim:sub | source
    requests: int
    period_ms: int


@dataclass(frozen=True)
class Timeouts:
    connect_ms: int = 1000
    client_ms: int = 30_000
    server_ms: int = 10_000


@dataclass(frozen=True)
class GatewayPolicy:
    routes: tuple[Route, ...]
    auth: Auth | None
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    timeouts: Timeouts = Timeouts()


class _Errors:
    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.found.setdefault(path, []).append(message)


def _duration_ms(
    value, path: str, errors: _Errors, *, low: int = 1, high: int = 120_000
) -> int | None:
    text = str(value).strip() if isinstance(value, (str, int, float)) else ""
    matched = DURATION.match(text)
    if not matched:
        errors.add(path, "a duration such as 250ms or 2s")
        return None
    number = float(matched.group(1)) * (1 if matched.group(2) == "ms" else 1000)
    if not low <= number <= high:
        errors.add(path, f"between {low}ms and {high // 1000}s")
        return None
    return int(number)


def _mapping(value, path: str, errors: _Errors) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(path, "must be a mapping")
        return {}
    return value


def _unknown(section: dict, allowed: tuple[str, ...], path: str, errors: _Errors) -> None:
    for key in section:
        if key in REFUSED:
            errors.add(f"{path}.{key}", f"not supported: {REFUSED[key]}")
        elif key not in allowed:
            errors.add(f"{path}.{key}", f"unknown field; expected one of: {', '.join(allowed)}")


def _value(value, path: str, errors: _Errors) -> str | None:
    text = (
        str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    )
    if not SAFE_VALUE.match(text):
        errors.add(path, "1-128 characters of letters, digits and . _ : / @ + = , ; ~ * -")
        return None
    return text


def _header_map(value, path: str, errors: _Errors) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, header_value in _mapping(value, path, errors).items():
        if not HEADER_NAME.match(str(name)):
            errors.add(f"{path}.{name}", "a header name: letters, digits and -")
            continue
        if str(name).lower() in CLAIM_HEADERS.values():
            errors.add(f"{path}.{name}", "written by the gateway from the verified token only")
            continue
        checked = _value(header_value, f"{path}.{name}", errors)
        if checked is not None:
            pairs.append((str(name).lower(), checked))
    return tuple(pairs)


def _header_list(value, path: str, errors: _Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(path, "must be a list of header names")
        return ()
    names = []
    for index, name in enumerate(value):
        if not HEADER_NAME.match(str(name)):
            errors.add(f"{path}[{index}]", "a header name: letters, digits and -")
        else:
            names.append(str(name).lower())
    return tuple(names)


def _headers_rules(value, path: str, errors: _Errors) -> tuple[tuple, tuple]:
    section = _mapping(value, path, errors)
    _unknown(section, ("set", "remove"), path, errors)
    return (
        _header_map(section.get("set"), f"{path}.set", errors),
        _header_list(section.get("remove"), f"{path}.remove", errors),
    )


def _match(value, path: str, errors: _Errors) -> Match:
    section = _mapping(value, path, errors)
    _unknown(section, ("pathPrefix", "host", "headers"), path, errors)
    prefix = section.get("pathPrefix", "/")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        errors.add(f"{path}.pathPrefix", "a path starting with /")
        prefix = "/"
    else:
        prefix = _value(prefix, f"{path}.pathPrefix", errors) or "/"
    host = section.get("host")
    if host is not None:
        host = _value(host, f"{path}.host", errors)
    headers = []
    for name, header_value in _mapping(section.get("headers"), f"{path}.headers", errors).items():
        if not HEADER_NAME.match(str(name)):
            errors.add(f"{path}.headers.{name}", "a header name: letters, digits and -")
            continue
        checked = _value(header_value, f"{path}.headers.{name}", errors)
        if checked is not None:
            headers.append((str(name).lower(), checked))
    return Match(prefix, host, tuple(headers))


def _route(value, index: int, limits: dict, errors: _Errors) -> Route | None:
    path = f"routes[{index}]"
    if not isinstance(value, dict):
        errors.add(path, "must be a mapping with name, match and backend")
        return None
    _unknown(
        value,
        (
            "name",
            "match",
            "backend",
            "auth",
            "scopes",
            "rateLimit",
            "timeout",
            "requestHeaders",
            "responseHeaders",
        ),
        path,
        errors,
    )
    name = str(value.get("name", ""))
    if not NAME.match(name):
        errors.add(f"{path}.name", "a name of lower-case letters, digits and - (at most 31)")
    backend = value.get("backend")
    if backend not in BACKENDS:
        errors.add(f"{path}.backend", f"one of: {', '.join(BACKENDS)}")
    auth = value.get("auth", "required")
    if auth not in ("required", "none"):
        errors.add(f"{path}.auth", "required or none")
    scopes = value.get("scopes") or []
    if not isinstance(scopes, list) or not all(
        isinstance(scope, str) and re.match(r"^[a-z][a-z0-9:._-]{0,40}$", scope) for scope in scopes
    ):
        errors.add(f"{path}.scopes", "a list of scope names such as orders:read")
        scopes = []
    if scopes and auth == "none":
        errors.add(
            f"{path}.scopes", "scopes need auth: required (there is no token to read them from)"
        )
    rate_limit = value.get("rateLimit")
    if rate_limit is not None and rate_limit not in limits:
        errors.add(f"{path}.rateLimit", f"no rate limit named {rate_limit!r} under rateLimits")
    timeout = value.get("timeout")
    timeout_ms = _duration_ms(timeout, f"{path}.timeout", errors) if timeout is not None else None
    set_request, remove_request = _headers_rules(
        value.get("requestHeaders"), f"{path}.requestHeaders", errors
    )
    set_response, remove_response = _headers_rules(
        value.get("responseHeaders"), f"{path}.responseHeaders", errors
    )
    return Route(
        name=name,
        match=_match(value.get("match"), f"{path}.match", errors),
        backend=str(backend),
        auth=auth == "required",
        scopes=tuple(scopes),
        rate_limit=rate_limit,
        timeout_ms=timeout_ms,
        set_request_headers=set_request,
        remove_request_headers=remove_request,
        set_response_headers=set_response,
        remove_response_headers=remove_response,
    )


def _auth(value, errors: _Errors) -> Auth | None:
    if value is None:
        return None
    section = _mapping(value, "auth", errors)
    _unknown(section, ("issuer", "audience", "algorithms"), "auth", errors)
    issuer = section.get("issuer")
    audience = section.get("audience")
    for key, given in (("issuer", issuer), ("audience", audience)):
        if given is None:
            errors.add(f"auth.{key}", "required: a token must name it")
        else:
            _value(given, f"auth.{key}", errors)
    algorithms = section.get("algorithms", ["ES256"])
    if not isinstance(algorithms, list) or len(algorithms) != 1:
        errors.add(
            "auth.algorithms",
            "exactly one algorithm: the gateway pins it, so a token cannot choose its own",
        )
        algorithm = "ES256"
    else:
        algorithm = str(algorithms[0])
        if algorithm in ALGORITHMS_REFUSED:
            errors.add("auth.algorithms[0]", f"not supported: {ALGORITHMS_REFUSED[algorithm]}")
        elif algorithm not in ASYMMETRIC_ALGORITHMS:
            errors.add("auth.algorithms[0]", f"one of: {', '.join(ASYMMETRIC_ALGORITHMS)}")
        elif algorithm != "ES256":
            errors.add("auth.algorithms[0]", "the sandbox's issuer signs with ES256 (P-256) keys")
    return Auth(str(issuer), str(audience), algorithm)


def _rate_limits(value, errors: _Errors) -> dict[str, RateLimit]:
    limits = {}
    for name, spec in _mapping(value, "rateLimits", errors).items():
        path = f"rateLimits.{name}"
        if not NAME.match(str(name)):
            errors.add(path, "a name of lower-case letters, digits and -")
            continue
        section = _mapping(spec, path, errors)
        _unknown(section, ("key", "requests", "period", "algorithm"), path, errors)
        algorithm = section.get("algorithm", "sliding-window")
        if algorithm in RATE_ALGORITHMS_REFUSED:
            errors.add(f"{path}.algorithm", f"not supported: {RATE_ALGORITHMS_REFUSED[algorithm]}")
        elif algorithm != "sliding-window":
            errors.add(f"{path}.algorithm", "sliding-window (what HAProxy's stick tables count)")
        key = str(section.get("key", ""))
        if not RATE_KEYS.match(key):
            errors.add(f"{path}.key", "header:<name>, claim:sub or source")
        requests = section.get("requests")
        if (
            not isinstance(requests, int)
            or isinstance(requests, bool)
            or not 1 <= requests <= 100_000
        ):
            errors.add(f"{path}.requests", "a whole number of requests from 1 to 100000")
            requests = 1
        period_ms = _duration_ms(
            section.get("period", "1s"), f"{path}.period", errors, low=100, high=3_600_000
        )
        limits[str(name)] = RateLimit(str(name), key, requests, period_ms or 1000)
    return limits


def _timeouts(value, errors: _Errors) -> Timeouts:
    section = _mapping(value, "timeouts", errors)
    _unknown(section, ("connect", "client", "server"), "timeouts", errors)
    defaults = Timeouts()
    values = {}
    for key, default in (
        ("connect", defaults.connect_ms),
        ("client", defaults.client_ms),
        ("server", defaults.server_ms),
    ):
        given = section.get(key)
        values[key] = (
            _duration_ms(given, f"timeouts.{key}", errors) if given is not None else default
        )
    return Timeouts(
        values["connect"] or defaults.connect_ms,
        values["client"] or defaults.client_ms,
        values["server"] or defaults.server_ms,
    )


def parse_policy(text: str) -> GatewayPolicy:
    """Read and validate a gateway policy; raise GatewayPolicyInvalid naming every bad field."""
    errors = _Errors()
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise GatewayPolicyInvalid(
            {"yaml": [f"not valid YAML{where}: {getattr(error, 'problem', error)}"]}
        ) from None
    if not isinstance(document, dict):
        raise GatewayPolicyInvalid(
            {"policy": ["a mapping with routes, auth, rateLimits and timeouts"]}
        )
    _unknown(document, ("routes", "auth", "rateLimits", "timeouts"), "policy", errors)
    limits = _rate_limits(document.get("rateLimits"), errors)
    auth = _auth(document.get("auth"), errors)
    raw_routes = document.get("routes")
    routes: list[Route] = []
    if not isinstance(raw_routes, list) or not raw_routes:
        errors.add("routes", "a list of at least one route")
    else:
        if len(raw_routes) > 20:
            errors.add("routes", "at most 20 routes")
        for index, raw in enumerate(raw_routes[:20]):
            route = _route(raw, index, limits, errors)
            if route is not None:
                routes.append(route)
    seen: set[str] = set()
    for index, route in enumerate(routes):
        if route.name in seen:
            errors.add(f"routes[{index}].name", f"{route.name!r} is used by an earlier route")
        seen.add(route.name)
        if route.auth and auth is None:
            errors.add(f"routes[{index}].auth", "required, but the policy has no auth section")
    timeouts = _timeouts(document.get("timeouts"), errors)
    if errors.found:
        raise GatewayPolicyInvalid(errors.found)
    return GatewayPolicy(tuple(routes), auth, limits, timeouts)
