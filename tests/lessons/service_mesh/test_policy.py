"""Mesh policy: validation names the field, refuses what HAProxy cannot do, and renders configs HAProxy accepts.

The rendered configurations are checked by the real HAProxy (``haproxy -c``),
the same check the control plane runs before every reload.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_services.proxy.certs import CertificateAuthority
from sandbox_services.proxy.process import check_config
from sandbox_services.service_mesh.policy import PolicyInvalid, parse_policy
from sandbox_services.service_mesh.render import MeshFiles, render_sidecar
from sandbox_services.service_mesh.scenario import (
    destination_rule,
    documents,
    peer_authentication,
    virtual_service,
)
from sandbox_services.service_mesh.topology import pool_size, sidecars

SANDBOX = "ab" * 16


def errors_of(text: str) -> dict[str, list[str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return caught.value.errors


def test_an_unknown_field_is_refused_by_its_path():
    errors = errors_of(
        "kind: DestinationRule\nspec:\n  host: backend\n  trafficPolicy:\n    loadBalancr: {simple: RANDOM}\n"
    )
    assert list(errors) == ["DestinationRule[0].spec.trafficPolicy.loadBalancr"]


def test_a_bad_load_balancer_names_the_field_and_the_choices():
    errors = errors_of(documents(destination_rule("backend", "FASTEST")))
    message = errors["DestinationRule[0].spec.trafficPolicy.loadBalancer.simple"][0]
    assert "ROUND_ROBIN" in message and "LEAST_REQUEST" in message


def test_grpc_retry_on_unavailable_is_refused_with_the_reason():
    errors = errors_of(
        documents(virtual_service("backend", retries="{attempts: 2, retryOn: 'unavailable'}"))
    )
    message = errors["VirtualService[0].spec.http[0].retries.retryOn"][0]
    assert "grpc-status" in message and "no faithful equivalent" in message


def test_a_cap_on_ejections_haproxy_cannot_honour_is_refused():
    outlier = (
        "{consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 50}"
    )
    errors = errors_of(documents(destination_rule("backend", "ROUND_ROBIN", outlier)))
    assert (
        "only 100 is faithful"
        in errors["DestinationRule[0].spec.trafficPolicy.outlierDetection.maxEjectionPercent"][0]
    )


def test_broken_yaml_names_the_line():
    errors = errors_of("kind: VirtualService\nspec: {hosts: [backend\n")
    assert next(iter(errors)).startswith("line ")


def test_a_duration_and_a_percentage_are_checked():
    errors = errors_of(
        documents(
            virtual_service(
                "backend",
                timeout="soon",
                fault="{abort: {percentage: {value: 120}, httpStatus: 503}}",
            )
        )
    )
    assert "VirtualService[0].spec.http[0].timeout" in errors
    assert "VirtualService[0].spec.http[0].fault.abort.percentage.value" in errors


def test_retries_beside_a_fault_are_refused_as_istio_ignores_them():
    errors = errors_of(
        documents(
            virtual_service(
                "backend",
                retries="{attempts: 2, retryOn: 5xx}",
                fault="{abort: {percentage: {value: 10}, httpStatus: 503}}",
            )
        )
    )
    assert "neither timeouts nor retries" in errors["VirtualService[0].spec.http[0].fault"][0]


def test_a_valid_policy_reads_as_istio_means_it():
    policy = parse_policy(
        documents(
            peer_authentication("STRICT"),
            peer_authentication("PERMISSIVE", "backend"),
            destination_rule(
                "backend",
                "ROUND_ROBIN",
                "{consecutive5xxErrors: 4, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100}",
            ),
            virtual_service(
                "backend",
                timeout="1s",
                retries="{attempts: 3, perTryTimeout: 200ms, retryOn: 'gateway-error,reset'}",
            ),
        )
    )
    assert policy.mtls("backend") == "PERMISSIVE" and policy.mtls("frontend") == "STRICT"
    assert policy.destination("backend").outlier.base_ejection_ms == 3000
    route = policy.route("backend")
    assert (route.timeout_ms, route.retries.attempts, route.retries.per_try_timeout_ms) == (
        1000,
        3,
        200,
    )


POLICIES = {
    "default": documents(peer_authentication("STRICT"), destination_rule("backend")),
    "permissive, outlier, retries, timeout, fault": documents(
        peer_authentication("STRICT"),
        peer_authentication("PERMISSIVE", "backend"),
        destination_rule(
            "backend",
            "RANDOM",
            "{consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 100}",
        ),
        virtual_service(
            "backend", timeout="1s", retries="{attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}"
        ),
        virtual_service(
            "frontend",
            fault="{delay: {percentage: {value: 12.5}, fixedDelay: 20ms}, abort: {percentage: {value: 5}, httpStatus: 500}}",
        ),
    ),
    "mTLS disabled": documents(peer_authentication("DISABLE")),
    "connection pool": (
        "kind: DestinationRule\nspec:\n  host: backend\n  trafficPolicy:\n"
        "    connectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 5}}\n"
    ),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_rendered_sidecar_config_is_accepted_by_haproxy(name, tmp_path: Path):
    ca = CertificateAuthority(SANDBOX, tmp_path / "certs")
    for workload in ("client", "frontend", "backend"):
        ca.issue(workload)
    layout = sidecars(
        {"frontend": [20001], "backend": [20002, 20003, 20004]},
        list(range(21000, 21000 + pool_size())),
    )
    files = MeshFiles(SANDBOX, tmp_path, tmp_path, ca.ca_path)
    policy = parse_policy(POLICIES[name])
    for sidecar in layout:
        text = render_sidecar(
            sidecar,
            sidecars=layout,
            policy=policy,
            files=files,
            running={"frontend": {0}, "backend": {0, 1}},
        )
        check_config(text, tmp_path / f"{sidecar.name}.cfg")  # raises with HAProxy's own alert


def test_a_connection_pool_shares_max_connections_and_bounds_the_queue_with_a_refusal(
    tmp_path: Path,
):
    ca = CertificateAuthority(SANDBOX, tmp_path / "certs")
    layout = sidecars(
        {"frontend": [20001], "backend": [20002, 20003, 20004]},
        list(range(21000, 21000 + pool_size())),
    )
    policy = parse_policy(
        documents(
            destination_rule(
                "backend",
                "ROUND_ROBIN",
                pool="{tcp: {maxConnections: 5}, http: {http1MaxPendingRequests: 3}}",
            )
        )
    )
    client = next(sidecar for sidecar in layout if sidecar.name == "client-0")
    text = render_sidecar(
        client,
        sidecars=layout,
        policy=policy,
        files=MeshFiles(SANDBOX, tmp_path, tmp_path, ca.ca_path),
        running={"frontend": {0}, "backend": {0, 1}},
    )
    servers = {
        line.split()[1]: line
        for line in text.splitlines()
        if line.startswith("    server backend-")
    }
    # 5 for the host, shared by the two running replicas; the stopped one holds 1 until it runs.
    assert "maxconn 3" in servers["backend-0"] and "maxconn 2" in servers["backend-1"]
    assert "maxconn 1" in servers["backend-2"]
    # The pending bound refuses at once; per-server maxqueue would not (it spills to an unbounded queue).
    assert "http-request deny deny_status 503 if { queue() ge 3 }" in text
    assert not any("maxqueue" in line for line in servers.values())
