"""The API-gateway lesson on the real runtime and a real HAProxy at the edge.

One sandbox from the lab's own host and supervisor (tests/sandboxes.py) for
the module. The evidence is independent of the experiments' reports: the
back ends' own request counters (read on their own ports), the answers a
plain client gets from the gateway's port, HAProxy's stats through its
runtime API, and the spans the sandbox kept.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from sandbox_services.api_gateway.experiments import CANARY_FOR_EVERYONE
from sandbox_services.api_gateway.knobs import DEFAULT_POLICY
from sandbox_services.api_gateway.scenario import forged_token, rate_limited_policy, replace_lines
from sandbox_services.api_gateway.services.gateway.client import GatewayClient, GatewayError
from sandbox_services.api_gateway.services.issuer.client import issue_token
from sandbox_services.proxy import runtime_api
from tests.sandboxes import Sandbox, wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("api-gateway")


@pytest.fixture(scope="module")
def gateway(sandbox) -> GatewayClient:
    return GatewayClient(sandbox.address("gateway"))


@pytest.fixture
def default_policy(gateway):
    """Leave the gateway on its default policy after the test, whatever it applied."""
    yield
    gateway.apply(DEFAULT_POLICY)


def edge(gateway: GatewayClient) -> int:
    return int(gateway.describe()["listen"].rpartition(":")[2])


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else {}
    finally:
        connection.close()


def own_count(sandbox: Sandbox, service: str) -> int:
    """The service's own count of the requests it served, read on its own port."""
    port = int(sandbox.address(service).rpartition(":")[2])
    return get(port, "/admin/stats")[2]["requests"]


def bearer(token: str | None, **extra: str) -> dict:
    return {**extra, **({"Authorization": f"Bearer {token}"} if token else {})}


def test_bad_tokens_are_refused_at_the_gateway_and_never_reach_the_service(sandbox, gateway):
    port = edge(gateway)
    issuer = sandbox.address("issuer")
    bad = {
        "expired": issue_token(issuer, ttl_s=-30),
        "wrong-audience": issue_token(issuer, aud="billing-api"),
        "bad-signature": forged_token(),
        "missing": None,
    }
    before = own_count(sandbox, "catalog")
    for reason, token in bad.items():
        status, headers, body = get(port, "/catalog/items", bearer(token))
        assert status == 401, reason
        assert body == {"error": reason, "refused_by": "gateway"}
        assert 'error="invalid_token"' in headers["www-authenticate"]
    assert own_count(sandbox, "catalog") == before  # not one of them reached the catalog

    status, _, body = get(
        port, "/catalog/items", bearer(issue_token(issuer, sub="alice"), **{"x-user-id": "mallory"})
    )
    assert status == 200
    assert own_count(sandbox, "catalog") == before + 1
    # The gateway replaced the client's forged identity with the verified subject.
    assert body["seen"]["x-user-id"] == "alice"
    assert body["seen"]["token_verified_here"] is True


def test_a_genuine_token_without_the_routes_scope_gets_403(sandbox, gateway):
    token = issue_token(sandbox.address("issuer"), scope="catalog:read")
    status, headers, body = get(edge(gateway), "/orders/7", bearer(token))
    assert status == 403
    assert body["error"] == "insufficient-scope"
    assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_around_the_gateway_a_forged_identity_header_is_all_the_service_has(sandbox):
    port = int(sandbox.address("catalog").rpartition(":")[2])
    status, _, body = get(port, "/catalog/items", {"x-user-id": "admin"})
    assert status == 200
    assert body["seen"]["x-user-id"] == "admin"
    assert body["seen"]["token_verified_here"] is False


def test_over_its_limit_a_key_gets_429_with_retry_after_while_another_key_is_served(
    sandbox, gateway, default_policy
):
    gateway.apply(rate_limited_policy(3, 2000))
    port = edge(gateway)
    token = issue_token(sandbox.address("issuer"))
    greedy = [
        get(port, "/catalog/items?limit=1", bearer(token, **{"x-api-key": "greedy"}))
        for _ in range(6)
    ]
    statuses = [status for status, _, _ in greedy]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429, 429]
    refused_headers = greedy[3][1]
    assert refused_headers["retry-after"] == "4"  # two periods of 2 s
    assert greedy[3][2]["limit"] == 3
    polite = get(port, "/catalog/items?limit=1", bearer(token, **{"x-api-key": "polite"}))
    assert polite[0] == 200
    # HAProxy's own table holds both keys with their counts.
    table = gateway.table("per-key")
    assert "key=greedy" in table and "key=polite" in table


def test_the_bff_answers_by_its_deadline_with_a_partial_result(sandbox, gateway):
    port = edge(gateway)
    token = issue_token(sandbox.address("issuer"), scope="orders:read")
    reviews_before = own_count(sandbox, "reviews")
    sandbox.control("delay", "reviews", delay_ms=800)
    try:
        started = time.monotonic()
        status, _, body = get(port, "/bff/home?sku=sku-002&deadline_ms=120", bearer(token))
        elapsed = time.monotonic() - started
    finally:
        sandbox.control("clear", "reviews")
    assert status == 200
    assert body["partial"] is True
    assert set(body["parts"]) == {"catalog", "orders"}
    assert "deadline" in body["missing"]["reviews"]
    assert body["parts"]["orders"]["orders"][0]["seen_user"] == "alice"
    assert elapsed < 0.8  # answered before the slow back end would have
    # The slow call was really made (and abandoned), not skipped.
    wait_until(lambda: own_count(sandbox, "reviews") > reviews_before, 3)


def test_a_route_change_under_traffic_loses_no_request(sandbox, gateway, default_policy):
    gateway.apply(DEFAULT_POLICY.replace("    requests: 50\n", "    requests: 100000\n"))
    port = edge(gateway)
    token = issue_token(sandbox.address("issuer"), scope="orders:read")
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                connection.request("GET", "/catalog/items?limit=1", headers=bearer(token))
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                statuses.append(0)
                failures.append(repr(error))
                connection.close()
            time.sleep(0.005)
        connection.close()

    thread = threading.Thread(target=traffic)
    thread.start()
    reloads_before = gateway.describe()["reloads"]
    try:
        time.sleep(0.3)
        canary_for_all = replace_lines(
            DEFAULT_POLICY, {CANARY_FOR_EVERYONE[0]: CANARY_FOR_EVERYONE[1]}
        )
        for policy in (canary_for_all, DEFAULT_POLICY, canary_for_all):
            applied = gateway.apply(policy.replace("    requests: 50\n", "    requests: 100000\n"))
            assert applied["changed"]
            time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    assert len(statuses) > 50
    assert [status for status in statuses if status != 200] == [], failures
    described = gateway.describe()
    assert described["reloads"] == reloads_before + 3
    # The last change is live: a gRPC call with no canary header now reaches orders-v2.
    result = sandbox.run("routing", {"calls": 1, "wan_rtt_ms": 0})
    plain = next(call for call in result["figures"]["calls"] if call["call"] == "gRPC GetOrder")
    assert plain["body"]["version"] == "v2"


def test_an_invalid_policy_is_refused_naming_the_field_and_the_running_one_stays(gateway):
    running = gateway.config()
    with pytest.raises(GatewayError) as refused:
        gateway.apply(
            "routes:\n  - {name: x, match: {pathPrefix: /x/}, backend: billing, aggregate: true}\n"
        )
    assert refused.value.status == 400
    assert "routes[0].backend" in refused.value.errors
    assert "backend-for-frontend" in " ".join(refused.value.errors["routes[0].aggregate"])
    assert gateway.config() == running


def test_the_gateway_span_comes_from_haproxys_log_and_joins_the_services_trace(sandbox, gateway):
    since = sandbox.last_seq()
    result = sandbox.run("routing", {"calls": 1, "wan_rtt_ms": 0})
    trace_id = next(
        call["trace_id"]
        for call in result["figures"]["calls"]
        if call["call"].startswith("GET /orders")
    )

    def trace_spans() -> list[dict]:
        spans = [span for span in sandbox.spans(since) if span["trace_id"] == trace_id]
        services = {span["service"] for span in spans}
        return spans if {"gateway", "bff", "orders"} <= services else []

    spans = wait_until(trace_spans, 10)
    by_id = {span["span_id"]: span for span in spans}
    hop = next(span for span in spans if span["service"] == "gateway")
    assert hop["attributes"]["gateway.route"] == "orders"
    assert hop["attributes"]["haproxy.server"] == "bff"
    # The BFF's server span is the gateway hop's child: HAProxy passed its own span id on.
    bff_server = next(s for s in spans if s["service"] == "bff" and s["kind"] == "server")
    assert bff_server["parent_id"] == hop["span_id"]
    orders_server = next(s for s in spans if s["service"] == "orders" and s["kind"] == "server")
    assert by_id[orders_server["parent_id"]]["service"] == "bff"


def test_every_experiment_runs_with_its_defaults(sandbox):
    for name in (
        "routing",
        "edge-auth",
        "rate-limiting",
        "aggregation",
        "single-point",
        "live-policy",
    ):
        result = sandbox.run(name, {})
        assert result["ok"] is True, (name, result["headline"])


def test_haproxy_answers_the_refusals_itself(sandbox, gateway):
    port = edge(gateway)
    for _ in range(3):
        assert get(port, "/catalog/items")[0] == 401
    stats = runtime_api.parse_show_stat(
        runtime_api.command_blocking(gateway.describe()["stats_socket"], "show stat")
    )
    frontend = next(row for row in stats if row["pxname"] == "edge" and row["svname"] == "FRONTEND")
    backends_4xx = sum(
        int(row["hrsp_4xx"] or 0)
        for row in stats
        if row["pxname"].startswith("route_") and row["svname"] == "BACKEND"
    )
    # Every 4xx the back ends answered passed the frontend too; the rest the frontend answered itself.
    assert int(frontend["hrsp_4xx"]) >= backends_4xx + 3


def test_a_restarted_issuer_publishes_new_keys_and_the_gateway_reloads_them(sandbox, gateway):
    old_kid = gateway.describe()["keys"][0]["kid"]
    old_token = issue_token(sandbox.address("issuer"))
    sandbox.control("restart", "issuer")
    wait_until(lambda: gateway.describe()["keys"][0]["kid"] != old_kid, 10)
    port = edge(gateway)
    fresh = get(port, "/catalog/items", bearer(issue_token(sandbox.address("issuer"))))
    assert fresh[0] == 200, fresh[2]
    # The old key is gone with the old issuer: its tokens no longer verify.
    status, _, body = get(port, "/catalog/items", bearer(old_token))
    assert (status, body["error"]) == (401, "bad-signature")
