"""The gateway's policy: validation names the field, refusals say why, and HAProxy accepts what we render."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_services.api_gateway.knobs import DEFAULT_POLICY
from sandbox_services.api_gateway.policy import BACKENDS, GatewayPolicyInvalid, parse_policy
from sandbox_services.api_gateway.render import GatewayFiles, render_gateway
from sandbox_services.api_gateway.services.issuer.backend import Issuer
from sandbox_services.proxy import jwt
from sandbox_services.proxy.process import check_config


def errors_of(text: str) -> dict[str, list[str]]:
    with pytest.raises(GatewayPolicyInvalid) as refused:
        parse_policy(text)
    return refused.value.errors


def test_the_default_policy_parses_with_first_match_order_kept():
    policy = parse_policy(DEFAULT_POLICY)
    names = [route.name for route in policy.routes]
    assert names.index("orders-grpc-canary") < names.index("orders-grpc")
    assert policy.rate_limits["per-key"].requests == 50
    assert policy.auth.audience == "lab-api"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("routes: []", "routes", "at least one"),
        (
            "routes:\n - {name: a, match: {pathPrefix: nope}, backend: catalog, auth: none}",
            "routes[0].match.pathPrefix",
            "starting with /",
        ),
        ("routes:\n - {name: a, backend: billing, auth: none}", "routes[0].backend", "one of"),
        ("routes:\n - {name: a, backend: catalog}", "routes[0].auth", "no auth section"),
        (
            "routes:\n - {name: a, backend: catalog, auth: none, timeout: soon}",
            "routes[0].timeout",
            "duration",
        ),
        (
            "routes:\n - {name: a, backend: catalog, auth: none, rateLimit: gold}",
            "routes[0].rateLimit",
            "gold",
        ),
        (
            "routes:\n - {name: a, backend: catalog, auth: none, scopes: [x]}",
            "routes[0].scopes",
            "auth: required",
        ),
        (
            "routes:\n - {name: a, backend: catalog, auth: none, requestHeaders: {set: {x-user-id: root}}}",
            "routes[0].requestHeaders.set.x-user-id",
            "verified token",
        ),
        (
            "routes:\n - {name: a, backend: catalog, auth: none, match: {host: 'a b'}}",
            "routes[0].match.host",
            "characters",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: none}]\nauth: {audience: x}",
            "auth.issuer",
            "required",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: none}]\ntimeouts: {server: 10m}",
            "timeouts.server",
            "duration",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: none}]\nbogus: 1",
            "policy.bogus",
            "unknown field",
        ),
        ("routes: [\n", "yaml", "line"),
    ],
)
def test_an_error_names_its_field(text, field, words):
    errors = errors_of(text)
    assert field in errors, errors
    assert words in " ".join(errors[field])


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            "routes: [{name: a, backend: bff, auth: none, aggregate: [catalog, orders]}]",
            "routes[0].aggregate",
            "backend-for-frontend",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: required}]\nauth: {issuer: i, audience: a, algorithms: [PS256]}",
            "auth.algorithms[0]",
            "PS*",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: required}]\nauth: {issuer: i, audience: a, algorithms: [none]}",
            "auth.algorithms[0]",
            "unsigned",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: required}]\nauth: {issuer: i, audience: a, jwksUri: 'http://x'}",
            "auth.jwksUri",
            "cannot fetch",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: none, rateLimit: r}]\n"
            "rateLimits: {r: {key: source, requests: 5, algorithm: token-bucket}}",
            "rateLimits.r.algorithm",
            "http_req_rate",
        ),
        (
            "routes: [{name: a, backend: catalog, auth: none, rateLimit: r}]\n"
            "rateLimits: {r: {key: source, requests: 5, burst: 10}}",
            "rateLimits.r.burst",
            "sliding period",
        ),
    ],
)
def test_a_field_without_a_faithful_haproxy_equivalent_is_refused_with_the_reason(
    text, field, reason
):
    errors = errors_of(text)
    assert field in errors, errors
    assert errors[field][0].startswith("not supported:")
    assert reason in errors[field][0]


def test_every_error_is_reported_at_once():
    errors = errors_of(
        "routes:\n - {name: A, backend: x}\n - {name: b, backend: catalog, auth: maybe}"
    )
    assert {"routes[0].name", "routes[0].backend", "routes[1].auth"} <= set(errors)


def test_haproxy_accepts_the_rendered_default_and_a_wide_policy(tmp_path: Path):
    issuer = Issuer("https://issuer.lab")
    keys = jwt.write_jwks(issuer.jwks(), tmp_path / "keys")
    files = GatewayFiles(tmp_path / "stats.sock", tmp_path / "log.sock", tuple(keys))
    ports = {name: 30000 + index for index, name in enumerate(BACKENDS)}
    wide = DEFAULT_POLICY + (
        ""  # keep the default, then a route with every field
    )
    wide = wide.replace(
        "  - name: reviews\n",
        "  - name: wide\n    match: {pathPrefix: /wide/, host: api.lab, headers: {x-tier: gold}}\n"
        "    backend: catalog\n    auth: required\n    scopes: [catalog:write]\n    timeout: 250ms\n"
        "    requestHeaders: {set: {x-from: gateway}, remove: [cookie]}\n"
        "    responseHeaders: {set: {x-served-by: gateway}, remove: [server]}\n"
        "  - name: reviews\n",
    )
    for text in (DEFAULT_POLICY, wide):
        config = render_gateway(
            parse_policy(text), files=files, listen_port=18999, backend_ports=ports, delay_ms=50
        )
        check_config(config, tmp_path / "gateway.cfg")  # raises ConfigInvalid with HAProxy's alert
        assert f'jwt_verify("ES256","{keys[0].path}")' in config
    assert "http-request set-var(txn.route) str(wide)" in config
    assert "req.hdr(x-tier) -m str gold" in config
