"""The service-mesh lesson on the real runtime and real HAProxy sidecars.

One sandbox from the lab's own host and supervisor (tests/sandboxes.py) for
the module; experiments run as the platform runs them. The evidence is
independent of the experiments' own report: HAProxy's stats and certificates
read here through each sidecar's runtime API, the backend replicas' own
counters, and the spans the sandbox kept.
"""

from __future__ import annotations

import ast
import http.client
import json
import uuid
from pathlib import Path

import pytest

from sandbox_services.proxy import runtime_api
from sandbox_services.proxy.binary import INSTALL_HINT
from sandbox_services.runtime.launcher import running_host
from sandbox_services.service_mesh.knobs import DEFAULT_POLICY
from sandbox_services.service_mesh.services.control_plane.client import (
    ControlPlaneClient,
    ControlPlaneError,
)
from tests.sandboxes import Sandbox, SandboxError, start_sandbox, wait_until

pytestmark = pytest.mark.timeout(300)
SERVICES = Path(__file__).resolve().parents[3] / "sandbox_services" / "service_mesh" / "services"


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("service-mesh")


@pytest.fixture(scope="module")
def plane(sandbox) -> ControlPlaneClient:
    return ControlPlaneClient(sandbox.address("control-plane"))


def sidecar(plane: ControlPlaneClient, name: str) -> dict:
    return next(item for item in plane.topology()["sidecars"] if item["name"] == name)


def haproxy_stat(plane: ControlPlaneClient, name: str) -> list[dict[str, str]]:
    """Read a sidecar's own counters through its runtime API (not through the control plane)."""
    socket_path = sidecar(plane, name)["stats_socket"]
    return runtime_api.parse_show_stat(runtime_api.command_blocking(socket_path, "show stat"))


def frontend_requests(plane: ControlPlaneClient, name: str, frontend: str) -> int:
    rows = haproxy_stat(plane, name)
    return int(
        next(
            row["req_tot"]
            for row in rows
            if row["pxname"] == frontend and row["svname"] == "FRONTEND"
        )
    )


def get(address: str, path: str) -> tuple[int, dict]:
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_strict_mtls_refuses_a_plaintext_client_and_spans_name_the_peer(sandbox, plane):
    result = sandbox.run("mtls", {"mode": "STRICT", "rotation_requests": 0})
    assert result["figures"]["plaintext"]["accepted"] is False
    # HAProxy's own error line says why it refused.
    assert any(
        "http request" in r["reason"] or "SSL" in r["reason"] for r in result["figures"]["refusals"]
    )
    client_identity = f"spiffe://lab/sandbox/{sandbox.id}/sa/client"

    def named_peer() -> bool:
        return any(
            span["service"] == "backend-sidecar"
            and span["attributes"].get("peer.spiffe_id") == client_identity
            for span in sandbox.spans()
        )

    # A sidecar's span is made from its log line, which the control plane reads in
    # batches: it may be kept a moment after the run's result (a fresh-clone CI run
    # read the kept spans before it arrived).
    wait_until(named_peer, 10)


def test_permissive_mtls_accepts_the_plaintext_client(sandbox, plane):
    result = sandbox.run("mtls", {"mode": "PERMISSIVE", "rotation_requests": 0})
    assert result["figures"]["plaintext"] == {
        **result["figures"]["plaintext"],
        "accepted": True,
        "status": 200,
    }


def test_certificate_rotation_loses_no_request_and_haproxy_serves_the_new_certificate(
    sandbox, plane
):
    before = sidecar(plane, "backend-0")
    result = sandbox.run("mtls", {"mode": "STRICT", "rotation_requests": 400})
    rotation = result["figures"]["rotation"]
    assert rotation["requests"] == 400 and rotation["failed"] == 0
    after = sidecar(plane, "backend-0")
    assert after["cert_serial"] != before["cert_serial"]
    served = runtime_api.certificate_serial(
        runtime_api.command_blocking(after["stats_socket"], f"show ssl cert {after['cert_path']}")
    )
    assert served == after["cert_serial"]


def test_outlier_detection_ejects_the_failing_replica_and_readmits_it(sandbox):
    result = sandbox.run(
        "outlier-detection", {"consecutive_errors": 3, "base_ejection_s": 1.0, "failing_s": 1.0}
    )
    figures = result["figures"]
    statuses = [row[1] for row in figures["timeline"]]
    first_down = next(i for i, status in enumerate(statuses) if status.startswith("DOWN"))
    assert any(status == "UP" for status in statuses[first_down:]), statuses
    ejected_at = figures["timeline"][first_down][0]
    readmitted_at = next(row[0] for row in figures["timeline"][first_down:] if row[1] == "UP")
    assert readmitted_at - ejected_at >= 0.9  # baseEjectionTime: 10 probes of 100 ms
    # Once ejected, the caller stops seeing its 503s: fewer errors than the replica would have sent.
    assert figures["replica_1_failed"] == sum(1 for row in figures["requests"] if row[1] == 503)


def test_a_connection_pool_queues_up_to_its_limit_and_refuses_the_overflow_as_haproxy_logs_it(
    sandbox,
):
    since = sandbox.last_seq()
    params = {"max_connections": 2, "max_pending": 2, "burst": 10, "work_ms": 400}
    result = sandbox.run("connection-pool", params)
    limited = result["figures"]["parts"]["with the limit"]
    unlimited = result["figures"]["parts"]["without a limit"]
    # HAProxy's own counters, read by the run before the next policy reloaded the sidecar.
    assert limited["haproxy_denied"] == 6 and limited["haproxy_queue_max"] == 2
    assert unlimited["haproxy_denied"] == 0 and unlimited["haproxy_queue_max"] == 0
    # The replica's own count: never more than the limit at once, then the whole burst.
    assert limited["backend_max_in_flight"] == 2 and limited["backend_received"] == 4
    assert unlimited["backend_max_in_flight"] == 10
    # HAProxy's log lines, as the sandbox kept them (not the run's report): both bursts,
    # every call traced; 2 waited in the queue about one call's time, 6 were refused (PR).
    calls = [
        span
        for span in sandbox.spans(since)
        if span["service"] == "client-sidecar"
        and span["attributes"].get("haproxy.backend") == "backend"
        and span["attributes"].get("url.path") == "/quote"
    ]
    assert len(calls) == 20
    refused = [s for s in calls if s["attributes"]["haproxy.termination_state"].startswith("PR")]
    queued = [s for s in calls if s["attributes"]["haproxy.timers_ms"]["tw"] > 0]
    assert len(refused) == 6
    assert {s["attributes"]["http.response.status_code"] for s in refused} == {503}
    assert all(s["attributes"]["haproxy.server"] == "<NOSRV>" for s in refused)
    assert len(queued) == 2 and all(
        s["attributes"]["haproxy.timers_ms"]["tw"] >= 300 for s in queued
    )
    assert result["ok"], result["headline"]


def test_max_connections_is_shared_anew_when_the_backend_scales(sandbox, plane):
    def server_limits() -> dict[str, int]:
        return {
            row["svname"]: int(row["slim"])
            for row in haproxy_stat(plane, "client-0")
            if row["pxname"] == "backend" and row["svname"].startswith("backend-")
        }

    plane.apply(
        "kind: DestinationRule\nspec:\n  host: backend\n  trafficPolicy:\n"
        "    connectionPool: {tcp: {maxConnections: 5}}\n"
    )
    try:
        assert server_limits()["backend-0"] == 5
        sandbox.control("scale", "backend", replicas=3)
        # HAProxy's own per-server limits, set live on the runtime API: 5 shared by three.
        wait_until(lambda: sorted(server_limits().values()) == [1, 2, 2], 10)
        assert sum(server_limits().values()) == 5
    finally:
        sandbox.control("scale", "backend", replicas=1)
        plane.apply(DEFAULT_POLICY)


def test_retries_are_counted_by_haproxy_and_by_the_replicas(sandbox):
    result = sandbox.run("retries", {"attempts": 2, "flaky_error_rate": 0.5, "requests": 200})
    rescue = result["figures"]["rescue"]
    without, with_retries = rescue["no retries"], rescue["2 retries on 5xx"]
    assert without["caller_failed"] > 0
    assert with_retries["caller_failed"] < without["caller_failed"]
    # Every retry HAProxy counted is one more request some replica received.
    extra = with_retries["backend_received_total"] - with_retries["caller_requests"]
    assert with_retries["haproxy_retries"] == extra > 0
    storm = result["figures"]["storm"]
    assert storm["retries at one hop"]["amplification"] == 3
    assert storm["retries at two hops"]["amplification"] == 9


def test_a_policy_change_under_traffic_fails_no_request(sandbox, plane):
    reloads_before = {p["sidecar"]: p["reloads"] for p in plane.topology()["processes"]}
    result = sandbox.run("live-policy", {"rate": 200, "changes": 4})
    assert result["figures"]["failed"] == []
    # On a busy machine the fixed rate may fall behind; enough requests crossed the changes.
    assert result["figures"]["requests"] >= 100
    reloads_after = {p["sidecar"]: p["reloads"] for p in plane.topology()["processes"]}
    assert reloads_after["client-0"] - reloads_before["client-0"] >= 4


def test_the_learner_sees_the_config_diff_and_a_bad_policy_gets_400_naming_the_field(plane):
    with pytest.raises(ControlPlaneError) as caught:
        plane.apply(
            "kind: VirtualService\nspec: {hosts: [backend], http: [{retries: {attempts: 2, retryOn: unavailable}}]}"
        )
    assert caught.value.status == 400
    assert list(caught.value.errors) == ["VirtualService[0].spec.http[0].retries.retryOn"]
    preview = plane.preview(
        "kind: DestinationRule\nspec: {host: backend, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}"
    )
    assert "+    balance roundrobin" in preview["diff"]["client-0"]
    assert "-    balance leastconn" in preview["diff"]["client-0"]


def test_fault_injection_by_policy_is_confirmed_in_the_spans(sandbox):
    result = sandbox.run(
        "fault-injection",
        {"delay_percent": 30.0, "delay_ms": 50, "abort_percent": 20.0, "requests": 60},
    )
    figures = result["figures"]
    assert figures["spans"] == 60
    assert figures["spans_aborted"] == figures["caller_503"] > 0
    assert figures["backend_received"] == 60 - figures["spans_aborted"]
    assert figures["spans_delayed"] > 0 and figures["delayed_span_ms"]["p50"] >= 50


def test_trace_context_joins_one_trace_only_when_the_app_forwards_it(sandbox):
    result = sandbox.run("trace-propagation", {"calls": 2})
    traces = result["figures"]["traces"]
    assert len(traces["forwarded"]) == 2
    assert all(
        {"frontend", "backend", "frontend-sidecar", "backend-sidecar"} <= set(t)
        for t in traces["forwarded"]
    )
    assert len(traces["not forwarded"]) == 4


def test_the_same_service_code_runs_with_the_mesh_off_and_on(sandbox, plane):
    pid = sandbox.states()["frontend"]["pid"]
    frontend = sandbox.address("frontend")
    through_sidecar = frontend_requests(plane, "frontend-0", "outbound_backend")
    assert get(frontend, "/checkout?item=on")[0] == 200
    assert frontend_requests(plane, "frontend-0", "outbound_backend") == through_sidecar + 1
    plane.set_enabled(False)
    try:
        assert get(frontend, "/checkout?item=off")[0] == 200
        # The call reached the backend without the frontend's sidecar counting it.
        assert frontend_requests(plane, "frontend-0", "outbound_backend") == through_sidecar + 1
    finally:
        plane.set_enabled(True)
    assert sandbox.states()["frontend"]["pid"] == pid  # the very same process, not a mesh build
    # And the services' code knows nothing of the mesh: no import of it anywhere.
    for path in list((SERVICES / "frontend").glob("*.py")) + list(
        (SERVICES / "backend").glob("*.py")
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                assert not any(
                    part in name
                    for name in names
                    for part in ("proxy", "control_plane", "topology", "policy")
                ), (path, names)


def test_overhead_is_measured_through_the_sidecars(sandbox, plane):
    before = frontend_requests(plane, "client-0", "outbound_backend")
    result = sandbox.run("overhead", {"rate": 200, "duration_s": 1.0, "traced_percent": 5.0})
    figures = result["figures"]
    assert figures["errors"] == {"mesh off": 0, "mesh on": 0}
    # Every mesh-on request (and its warm-up) went through the client's sidecar.
    after = frontend_requests(plane, "client-0", "outbound_backend")
    assert after - before == figures["requests"]["mesh on"] + 50
    assert all(value["pss"] > 0 for value in figures["memory_kb"].values())
    assert all(value > 0 for value in figures["cpu_ms_per_1000"].values())


def test_load_balancing_sends_less_to_the_slow_replica_under_least_request(sandbox):
    result = sandbox.run("load-balancing", {"slow_ms": 40, "requests": 240, "concurrency": 8})
    runs = result["figures"]["runs"]
    assert runs["ROUND_ROBIN"]["by_replica_own_count"] == {"0": 80, "1": 80, "2": 80}
    assert runs["LEAST_REQUEST"]["by_replica_own_count"]["2"] < 80
    for run in runs.values():  # HAProxy's per-server counts agree with the replicas' own
        assert {f"backend-{k}": v for k, v in run["by_replica_own_count"].items()} == run[
            "by_server_haproxy"
        ]


def test_without_haproxy_the_lesson_is_refused_and_other_lessons_start():
    with running_host(
        f"test-nohaproxy-{uuid.uuid4().hex[:6]}", extra_env={"LAB_HAPROXY": "/nonexistent/haproxy"}
    ) as host:
        with pytest.raises(SandboxError) as caught:
            start_sandbox(host, "service-mesh")
        assert INSTALL_HINT in str(caught.value)
        other = start_sandbox(host, "selftest")
        wait_until(lambda: other.status()["state"] == "running", 10)
        other.stop()


def test_every_experiment_runs_with_its_defaults(sandbox):
    for spec in sandbox._lab.experiments:
        result = sandbox.run(spec.name, {})
        assert result["headline"], spec.name
        assert result.get("ok", True), (spec.name, result["headline"])
