"""The REST vs gRPC lesson: real servers in real processes, real calls over 127.0.0.1.

One real sandbox of the lesson (tests/sandboxes.py: a real host, supervisor and
forked services) serves the module. The tests call the catalogs and the caller
directly at their ports and read the spans the supervisor kept; every
experiment also runs as the platform runs it (``command("run")``), with faults
set as a learner sets them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_services.rest_vs_grpc.services.caller.client import CallerClient
from sandbox_services.rest_vs_grpc.services.catalog.client import (
    GrpcCatalogClient,
    RestCatalogClient,
)
from sandbox_services.rest_vs_grpc.services.catalog.interface import InvalidArgument
from tests.sandboxes import Sandbox, wait_until


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("rest-vs-grpc")


# --- the catalog, both ways -------------------------------------------------


async def test_rest_and_grpc_return_the_same_products(sandbox: Sandbox) -> None:
    rest = RestCatalogClient(sandbox.address("catalog-rest"))
    grpc_ = GrpcCatalogClient(sandbox.address("catalog-grpc"))
    try:
        over_rest = await rest.list_products(25, offset=990)
        over_grpc = await grpc_.list_products(25, offset=990)
    finally:
        await rest.close()
        await grpc_.close()
    assert len(over_rest.products) == 25
    assert over_rest == over_grpc
    assert over_rest.products[10].id == 1  # the page wraps past the end of the catalog


async def test_protobuf_carries_the_same_products_in_fewer_bytes(sandbox: Sandbox) -> None:
    async with CallerClient(sandbox.address("caller")) as caller:
        result = await caller.one_call(50)
    rest, grpc_ = result["rest"]["second"], result["grpc"]["second"]
    assert result["same_data"] is True
    assert 0 < grpc_["response_body_bytes"] < 0.7 * rest["response_body_bytes"]
    # Counted at the socket, headers and framing included, on an open connection.
    assert grpc_["wire_received_bytes"] < rest["wire_received_bytes"]
    assert rest["wire_received_bytes"] > rest["response_body_bytes"]
    # HTTP/2's preface, SETTINGS and cold HPACK table make the first gRPC call bigger.
    first = result["grpc"]["first"]
    assert first["wire_sent_bytes"] > grpc_["wire_sent_bytes"]


async def test_wrong_type_is_refused_by_the_rest_server_and_by_the_grpc_stub(
    sandbox: Sandbox,
) -> None:
    rest = RestCatalogClient(sandbox.address("catalog-rest"))
    grpc_ = GrpcCatalogClient(sandbox.address("catalog-grpc"))
    try:
        rest_before = (await rest.server_stats()).calls.get("Reserve", 0)
        with pytest.raises(InvalidArgument, match="count must be an integer, got str 'ten'"):
            await rest.reserve(7, "ten")  # type: ignore[arg-type]
        assert (await rest.server_stats()).calls.get("Reserve", 0) == rest_before + 1

        grpc_before = (await grpc_.server_stats()).calls.get("Reserve", 0)
        with pytest.raises(TypeError):
            await grpc_.reserve(7, "ten")  # type: ignore[arg-type]
        assert (await grpc_.server_stats()).calls.get("Reserve", 0) == grpc_before
    finally:
        await rest.close()
        await grpc_.close()


async def test_contract_trace_has_a_rest_error_span_and_no_grpc_span_for_the_bad_call(
    sandbox: Sandbox,
) -> None:
    since = sandbox.last_seq()
    async with CallerClient(sandbox.address("caller")) as caller:
        result = await caller.contract()
    wrong = {a["transport"]: a for a in result["attempts"] if a["case"] == "wrong type"}
    assert wrong["rest"]["server_saw_it"] and not wrong["grpc"]["server_saw_it"]

    def contract_trace() -> list[dict] | None:
        spans = sandbox.spans(since)
        roots = [
            s
            for s in spans
            if s["service"] == "caller" and "contract" in s["name"] and s["kind"] == "server"
        ]
        if not roots:
            return None
        trace = [s for s in spans if s["trace_id"] == roots[-1]["trace_id"]]
        # Wait for the catalogs' batches too: three REST and two gRPC reservations.
        reservations = [
            s
            for s in trace
            if s["kind"] == "server" and s["service"].startswith("catalog") and "eserv" in s["name"]
        ]
        return trace if len(reservations) >= 5 else None

    trace = wait_until(contract_trace, 10)
    caller_span = next(s for s in trace if s["service"] == "caller" and s["kind"] == "server")
    assert "cannot be interpreted as an integer" in caller_span["attributes"]["exception.message"]
    rest_reservations = [
        s
        for s in trace
        if s["service"] == "catalog-rest" and s["kind"] == "server" and "eserv" in s["name"]
    ]
    grpc_reservations = [
        s
        for s in trace
        if s["service"] == "catalog-grpc"
        and s["kind"] == "server"
        and s["name"].endswith("/Reserve")
    ]
    assert len(rest_reservations) == 3  # "ten", 0 and 10 all reached the REST server
    assert sum(s["status"] == "error" for s in rest_reservations) == 2
    assert len(grpc_reservations) == 2  # "ten" never left the caller
    assert any(
        "must be an integer" in s["attributes"].get("status.description", "")
        for s in rest_reservations
    )


async def test_one_stream_delivers_every_update_while_polling_misses_some(
    sandbox: Sandbox,
) -> None:
    async with CallerClient(sandbox.address("caller")) as caller:
        result = await caller.streaming(duration_s=1.2, poll_interval_ms=200)
    stream, polling = result["grpc"], result["rest"]
    assert stream["requests_made"] == 1
    assert stream["updates_missed"] == 0
    assert stream["updates_delivered"] >= 10  # a 50 ms ticker for 1.2 s, on a busy machine
    assert 3 <= polling["requests_made"] <= 8
    assert polling["updates_missed"] > 0
    assert polling["updates_delivered"] < stream["updates_delivered"]


async def test_grpc_multiplexes_calls_on_one_connection_while_rest_opens_several(
    sandbox: Sandbox,
) -> None:
    async with CallerClient(sandbox.address("caller")) as caller:
        result = await caller.multiplexing(calls=16, hold_ms=150, rest_connection_limit=4)
    assert result["grpc"]["connections_seen_by_server"] == 1
    assert result["grpc"]["calls_seen_by_server"] == 16
    assert result["rest"]["connections_seen_by_server"] == 4
    assert result["rest"]["connections_opened_by_client"] == 4
    # Four rounds of 150 ms over HTTP/1.1 against one round over HTTP/2.
    assert result["rest"]["elapsed_ms"] >= 4 * 150
    assert result["grpc"]["elapsed_ms"] < result["rest"]["elapsed_ms"]


def test_load_experiment_measures_both_transports_and_keeps_runs(sandbox: Sandbox) -> None:
    params = {"concurrency": 2, "duration_s": 1, "items": 5, "sample_ratio": 0.01}
    first = sandbox.run("load", params)
    second = sandbox.run("load", params)
    for transport in ("rest", "grpc"):
        figures = second["results"][transport]
        assert figures["requests"] > 0 and figures["errors"] == 0
        assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert first["ok"] and second["ok"]
    assert len(second["table"]["rows"]) >= 2  # this run beside the previous one
    assert any("sampled at 1%" in note for note in second["notes"])
    costs = second["serialization"]
    assert costs["protobuf"]["bytes"] < costs["json"]["bytes"]


def test_codegen_writes_an_importable_package(tmp_path: Path) -> None:
    from sandbox_services.codegen import PROTOS_DIR, generate

    written = generate(PROTOS_DIR, tmp_path)
    stub = tmp_path / "sandbox_services/protos_gen/labapi/catalog/v1/catalog_pb2_grpc.py"
    assert stub in written
    assert (
        "from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2" in stub.read_text()
    )
    assert (tmp_path / "sandbox_services/protos_gen/labapi/catalog/v1/__init__.py").exists()


# --- every experiment as the platform runs it ------------------------------


SHORT_PARAMS = {
    "one-call": {"items": 5},
    "load": {"concurrency": 2, "duration_s": 1, "items": 5, "sample_ratio": 0.01},
    "streaming": {"duration_s": 1, "poll_interval_ms": 200},
    "contract": {},
    "multiplexing": {"calls": 8, "hold_ms": 50, "rest_connections": 4},
}


@pytest.mark.parametrize("experiment", list(SHORT_PARAMS))
def test_every_experiment_runs_end_to_end_in_a_real_sandbox(
    sandbox: Sandbox, experiment: str
) -> None:
    reply = sandbox.run_reply(experiment, SHORT_PARAMS[experiment])
    assert reply["state"] == "done", reply
    result = reply["result"]
    assert result["ok"] is True, result
    assert result["headline"] and result["summary"]


def test_multiplexing_charts_connections_apart_from_milliseconds(
    sandbox: Sandbox,
) -> None:
    reply = sandbox.run_reply("multiplexing", SHORT_PARAMS["multiplexing"])
    assert reply["state"] == "done", reply
    charts = {chart["y_label"]: chart for chart in reply["result"]["charts"]}
    assert set(charts) == {"ms", "connections"}
    assert charts["ms"]["categories"] == ["elapsed", "expected"]
    connections = {s["name"]: s["values"] for s in charts["connections"]["series"]}
    tiles = {t["label"]: t["value"] for t in reply["result"]["summary"]}
    assert connections == {
        "REST": [tiles["REST connections"]],
        "gRPC": [tiles["gRPC connections"]],
    }


def test_one_call_traces_learner_caller_and_both_catalogs(sandbox: Sandbox) -> None:
    since = sandbox.last_seq()
    assert sandbox.run_reply("one-call", {"items": 3})["state"] == "done"

    def services_seen() -> set[str] | None:
        seen = {s["service"] for s in sandbox.spans(since)}
        return seen if {"learner", "caller", "catalog-rest", "catalog-grpc"} <= seen else None

    wait_until(services_seen, 10)
    spans = sandbox.spans(since)
    sized = [
        s
        for s in spans
        if s["kind"] == "server"
        and s["service"].startswith("catalog")
        and (
            "http.response.body.size" in s["attributes"]
            or "rpc.response.body.size" in s["attributes"]
        )
    ]
    assert {s["service"] for s in sized} == {"catalog-rest", "catalog-grpc"}
    # The caller's client spans name their callee: the diagram draws caller -> catalog.
    peers = {s["peer"] for s in spans if s["service"] == "caller" and s["kind"] == "client"}
    assert {"catalog-rest", "catalog-grpc"} <= peers


def test_slowed_and_broken_catalogs_show_in_results_and_traces(
    sandbox: Sandbox,
) -> None:
    sandbox.control("delay", "catalog-rest", delay_ms=150)
    sandbox.control("error", "catalog-grpc", error_rate=1.0)
    since = sandbox.last_seq()
    try:
        reply = sandbox.run_reply("one-call", {"items": 3})
    finally:
        sandbox.control("clear", "catalog-rest")
        sandbox.control("clear", "catalog-grpc")
    assert reply["state"] == "done"
    assert reply["result"]["ok"] is False  # the gRPC side failed, and the result says so

    def grpc_error_span() -> list[dict]:
        return [
            s
            for s in sandbox.spans(since)
            if s["service"] == "catalog-grpc" and s["kind"] == "server" and s["status"] == "error"
        ]

    wait_until(grpc_error_span, 10)
    slow_rest = [
        s for s in sandbox.spans(since) if s["service"] == "catalog-rest" and s["kind"] == "server"
    ]
    assert slow_rest and min(s["end_ns"] - s["start_ns"] for s in slow_rest) >= 150e6


def test_load_traces_only_a_sample_of_its_requests(sandbox: Sandbox) -> None:
    since = sandbox.last_seq()
    params = {"concurrency": 4, "duration_s": 1, "items": 1, "sample_ratio": 0.1}
    reply = sandbox.run_reply("load", params)
    assert reply["state"] == "done", reply
    requests = reply["result"]["results"]["rest"]["requests"]
    assert requests >= 20
    calls = requests + 50  # the measured calls and the warm-up

    def sampled() -> list[dict]:
        return [
            s
            for s in sandbox.spans(since)
            if s["service"] == "catalog-rest" and s["kind"] == "server"
        ]

    served = wait_until(sampled, 10)
    # About a tenth of the calls reach the trace, each under a "load call" span.
    assert len(served) < 0.3 * calls
    load_calls = [
        s for s in sandbox.spans(since) if s["service"] == "learner" and s["name"] == "load call"
    ]
    assert load_calls
