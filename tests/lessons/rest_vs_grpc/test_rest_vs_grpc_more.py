"""The REST vs gRPC lesson beyond one call: deadlines, retries, both-way streams, schemas, bytes.

One real sandbox of the lesson serves the module. Each experiment runs as the
platform runs it; the evidence comes from the catalog's own counters (read
here over gRPC, not from the result), its spans, and the tests' own calls.
"""

from __future__ import annotations

import json
import re

import aiohttp
import grpc
import pytest
from google.protobuf.unknown_fields import UnknownFieldSet

from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc
from sandbox_services.protos_gen.labapi.evolution.v1 import item_pb2 as item_v1
from sandbox_services.rest_vs_grpc.debuggability import data_frames, grpc_message
from tests.sandboxes import Sandbox, wait_until


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("rest-vs-grpc")


async def _server_calls(sandbox: Sandbox, window: str = "") -> tuple[dict[str, int], int]:
    async with grpc.aio.insecure_channel(sandbox.address("catalog-grpc")) as channel:
        stats = await pb_grpc.CatalogStub(channel).GetServerStats(
            pb.ServerStatsRequest(window=window), timeout=5
        )
    return dict(stats.calls), stats.window_calls


# --- deadlines ------------------------------------------------------------------


async def test_a_deadline_shorter_than_the_work_cancels_the_server_side_call(
    sandbox: Sandbox,
) -> None:
    before, _ = await _server_calls(sandbox)
    since = sandbox.last_seq()
    result = sandbox.run("deadlines", {"work_ms": 1200, "deadline_ms": 200})
    after, _ = await _server_calls(sandbox)
    cancelled = {k: v for k, v in after.items() if k.startswith("SlowLookup.cancelled:")}
    completed = {k: v for k, v in after.items() if k.startswith("SlowLookup.completed:")}
    new_cancelled = {k for k in cancelled if k not in before}
    new_completed = {k for k in completed if k not in before}
    # The server's own counters: one call cut short, one finished.
    assert len(new_cancelled) == 1 and len(new_completed) == 1
    assert after["SlowLookup"] - before.get("SlowLookup", 0) == 2
    bounded, unbounded = result["table"]["rows"]
    assert bounded[1] == "DEADLINE_EXCEEDED" and unbounded[1] == "OK"
    assert 150 <= bounded[2] < 1200 <= unbounded[2]

    # The deadline reached the server in the grpc-timeout header: its span says
    # how much was left, no more than the caller gave.
    def remaining() -> list[float]:
        return [
            s["attributes"]["lab.deadline.remaining_ms"]
            for s in sandbox.spans(since)
            if "lab.deadline.remaining_ms" in s.get("attributes", {})
        ]

    seen = wait_until(remaining, 10)
    assert all(0 < ms <= 200 for ms in seen)


# --- retries --------------------------------------------------------------------


async def test_retries_multiply_the_requests_the_server_receives(sandbox: Sandbox) -> None:
    before, _ = await _server_calls(sandbox)
    result = sandbox.run("retries", {"calls": 100, "failure_ratio": 0.5, "max_attempts": 4})
    after, _ = await _server_calls(sandbox)
    received = after["FlakyLookup"] - before.get("FlakyLookup", 0)
    plain, retried = result["batches"]
    # The server's own total covers both batches: 100 attempts without retries,
    # and more than 100 with them (each failed attempt is tried again).
    assert received == plain["server_attempts"] + retried["server_attempts"]
    assert plain["server_attempts"] == 100
    # With p = 0.5 and 4 attempts the mean is 1.875 attempts a call; 100 calls
    # at a far lower mean than 1.4 would mean no retries happened.
    assert 140 <= retried["server_attempts"] <= 400
    assert retried["succeeded"] > plain["succeeded"]
    assert retried["amplification"] == round(retried["server_attempts"] / 100, 3)


async def test_retries_happen_in_the_grpc_library_not_in_the_caller(sandbox: Sandbox) -> None:
    since = sandbox.last_seq()
    sandbox.run("retries", {"calls": 200, "failure_ratio": 0.8, "max_attempts": 3})

    def retried_spans() -> list[dict]:
        return [
            s
            for s in sandbox.spans(since)
            if s.get("attributes", {}).get("lab.previous_attempts", 0) > 0
        ]

    # Only a share (5%) of retry calls is traced: 200 calls make about ten traced,
    # and at 80% failure most of those retry.
    assert wait_until(retried_spans, 10)


# --- bidirectional streaming ---------------------------------------------------


async def test_a_bidirectional_stream_answers_while_the_client_is_still_sending(
    sandbox: Sandbox,
) -> None:
    before, _ = await _server_calls(sandbox)
    result = sandbox.run("bidi-streaming", {"messages": 6, "interval_ms": 100})
    after, _ = await _server_calls(sandbox)
    assert after["ReserveMany"] - before.get("ReserveMany", 0) == 1
    rows = result["table"]["rows"]
    assert len(rows) == 6
    last_sent = rows[-1][1]
    # Answers to the first requests came back while the client was still pausing
    # between requests: both directions ran at once on one call.
    assert sum(1 for row in rows if row[2] < last_sent) >= 4
    assert after["Reserve"] - before.get("Reserve", 0) == 6


# --- schema evolution -------------------------------------------------------------


async def test_an_old_client_skips_the_new_field_and_reads_the_removed_one_as_default(
    sandbox: Sandbox,
) -> None:
    result = sandbox.run("schema-evolution", {})
    # The test's own old client, over the wire, against the v2 server.
    async with grpc.aio.insecure_channel(sandbox.address("catalog-grpc")) as channel:
        raw = await channel.unary_unary("/labapi.evolution.v2.Shelf/GetItem")(
            item_v1.GetItemRequest(id=7).SerializeToString(), timeout=5
        )
    old = item_v1.Item.FromString(raw)
    assert old.id == 7 and old.legacy_code == ""
    unknown = {f.field_number: f.data for f in UnknownFieldSet(old)}
    assert set(unknown) == {5} and unknown[5] > 0  # stock, never 0 for product 7 here
    rows = {row[0]: row[1:] for row in result["table"]["rows"]}
    assert rows["stock"][0] == unknown[5]
    assert rows["legacy_code"][1] == ""
    assert result["summary"][0]["value"] == len(raw)


# --- debuggability ----------------------------------------------------------------


async def test_the_curl_url_the_hex_dump_and_reflection_show_the_same_product(
    sandbox: Sandbox,
) -> None:
    before, _ = await _server_calls(sandbox)
    result = sandbox.run("debuggability", {})
    after, _ = await _server_calls(sandbox)
    assert result["ok"], result
    rows = {row[0]: row[1] for row in result["table"]["rows"]}
    url = re.fullmatch(r"curl -s '(.+)'", rows["REST: copy and run on the lab's machine"])[1]
    assert url.startswith(f"http://{sandbox.address('catalog-rest')}/")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        fetched = await response.json()
    assert json.loads(rows["REST: the body"]) == fetched

    # The hex dump's bytes are a gRPC message: 5-byte prefix, then protobuf
    # that the generated class parses into the same product.
    hex_lines = rows["gRPC: response DATA (prefix + message)"].splitlines()
    data = bytes.fromhex(" ".join(line[10:57] for line in hex_lines if not line.startswith(".")))
    flag, length, message = grpc_message(data)
    assert flag == 0 and length == len(message)
    product = pb.ListProductsResponse.FromString(message).products[0]
    assert product.id == fetched["products"][0]["id"] and product.sku.encode() in message

    services = rows["reflection: services"].split(", ")
    assert {"labapi.catalog.v1.Catalog", "grpc.health.v1.Health"} <= set(services)
    assert json.loads(rows["reflection: ListProducts reply as JSON"])["products"][0]["sku"] == (
        product.sku
    )
    # Two ListProducts calls reached the server: the captured one and the reflected one.
    assert after["ListProducts"] - before.get("ListProducts", 0) == 2


def test_data_frames_joins_a_padded_data_frame_and_skips_other_frames() -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = (0).to_bytes(3, "big") + bytes([0x4, 0]) + (0).to_bytes(4, "big")
    padded = bytes([2]) + b"\x00\x00\x00\x00\x02\x08\x01" + b"\x00\x00"
    data = len(padded).to_bytes(3, "big") + bytes([0x0, 0x8]) + (1).to_bytes(4, "big") + padded
    assert data_frames(preface + settings + data) == {1: b"\x00\x00\x00\x00\x02\x08\x01"}


# --- figures that used to be typed ------------------------------------------------


def test_the_streaming_ticker_interval_is_the_one_measured_in_the_run(lesson_sandbox) -> None:
    # A ticker set to 100 ms: a note typed from the default (50 ms) would be wrong.
    slow = lesson_sandbox("rest-vs-grpc", ticker_interval_s=0.1)
    result = slow.run("streaming", {"duration_s": 2, "poll_interval_ms": 200})
    note = next(n for n in result["notes"] if "TICKER_INTERVAL_S" in n)
    set_ms, measured_ms = (float(x) for x in re.findall(r"every ([\d.]+) ms", note))
    assert set_ms == 100
    assert 80 <= measured_ms <= 140
    summary = {item["label"]: item["value"] for item in result["summary"]}
    staleness = next(n for n in result["notes"] if "after they were emitted" in n)
    assert f"{summary['gRPC mean staleness']} ms after" in staleness


def test_the_contract_headline_quotes_what_the_servers_and_the_stub_said(sandbox: Sandbox) -> None:
    result = sandbox.run("contract", {})
    rows = result["table"]["rows"]
    rest = next(r for r in rows if r[0] == "REST" and r[1] == "wrong type")
    grpc_ = next(r for r in rows if r[0] == "gRPC" and r[1] == "wrong type")
    # The REST server's own refusal text and the stub's error class, from this run.
    assert rest[5] and rest[5] in result["headline"]
    assert "count must be an integer, got str 'ten'" in result["headline"]
    assert f"({grpc_[4]})" in result["headline"] and grpc_[6] is False
    assert "did not move" in result["headline"]


def test_multiplexing_notes_count_connections_and_label_what_is_calculated(
    sandbox: Sandbox,
) -> None:
    result = sandbox.run("multiplexing", {"calls": 8, "hold_ms": 50, "rest_connections": 2})
    summary = {item["label"]: item["value"] for item in result["summary"]}
    counted = next(n for n in result["notes"] if "server saw its" in n)
    assert f"its 8 calls arrive on {summary['gRPC connections']} TCP" in counted
    assert "expected ms (calculated)" in result["table"]["columns"]
    assert any("calculated, not measured" in n for n in result["notes"])
    assert any("browsers allow 6 per host" in n and "a claim" in n for n in result["notes"])
    # 8 calls, 2 connections, 50 ms: four rounds, as the calculation says.
    rest_row = next(r for r in result["table"]["rows"] if r[0] == "REST")
    assert rest_row[4] == 200


def test_the_load_note_labels_the_tracing_cost_as_a_claim(tmp_path) -> None:
    from sandbox_services.rest_vs_grpc.latency import summarise
    from sandbox_services.rest_vs_grpc.load_report import load_result
    from sandbox_services.rest_vs_grpc.serialization import measure_serialization

    run = summarise([0.001, 0.002], 0, 1.0)
    result = load_result(
        tmp_path,
        concurrency=1,
        duration_s=1,
        items=1,
        sample_ratio=0.01,
        results={"rest": run, "grpc": run},
        costs=measure_serialization(1, budget_s=0.001),
    )
    tracing = next(n for n in result["notes"] if "measure the tracer" in n)
    assert "a claim here" in tracing
