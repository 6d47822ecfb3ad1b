"""Spans of a sandbox: one trace across processes, seqs, the channel layer, faults."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from channels_redis.core import RedisChannelLayer

from sandbox_services.runtime import client, keys
from sandbox_services.runtime.probe import grpc_health_once, http_health_once

from .conftest import wait_until


def run(sandbox_id: str, experiment: str, **params) -> dict:
    return client.command(
        sandbox_id,
        "run",
        run_id=os.urandom(4).hex(),
        experiment=experiment,
        params=params,
        timeout_s=30,
    )


def service(sandbox_id: str, name: str, op: str, **params) -> dict:
    return client.command(sandbox_id, "service", service=name, op=op, **params)["services"][name]


def spans_after(sandbox_id: str, since: int, *, service: str, kind: str, count: int = 1):
    """Wait for ``count`` kept spans of one service and kind after seq ``since``."""
    return wait_until(
        lambda: (
            (
                found := [
                    span
                    for span in client.replay(sandbox_id, since)
                    if span["service"] == service and span["kind"] == kind
                ]
            )
            and len(found) >= count
            and found
        ),
        10,
    )


def last_seq(sandbox_id: str) -> int:
    kept = client.replay(sandbox_id)
    return kept[-1]["seq"] if kept else 0


@pytest.fixture(scope="module")
def sandbox(shared_host) -> str:
    sandbox_id, _ = shared_host.spawn()
    return sandbox_id


async def _run_and_listen(sandbox_id: str, wanted_spans: int) -> tuple[dict, list[dict]]:
    """Run the echo experiment; gather channel-layer messages until its spans and end arrive."""
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
    channel = await layer.new_channel()
    await layer.group_add(keys.channel_group(sandbox_id), channel)
    outcome = await asyncio.to_thread(run, sandbox_id, "echo", calls=1)
    messages: list[dict] = []

    def complete() -> bool:
        spans = sum(len(m["items"]) for m in messages if m["type"] == "sandbox.spans")
        finished = any(m["run"]["progress"] == 1.0 for m in messages if m["type"] == "sandbox.run")
        return spans >= wanted_spans and finished

    async with asyncio.timeout(10):
        while not complete():
            messages.append(await layer.receive(channel))
    await layer.group_discard(keys.channel_group(sandbox_id), channel)
    return outcome, messages


def test_one_call_gives_client_and_server_spans_of_one_trace(shared_host):
    sandbox_id, _ = shared_host.spawn()
    outcome, messages = asyncio.run(_run_and_listen(sandbox_id, 2))
    assert outcome["state"] == "done"
    sent = [span for m in messages if m["type"] == "sandbox.spans" for span in m["items"]]
    caller = next(span for span in sent if span["kind"] == "client")
    callee = next(span for span in sent if span["kind"] == "server")
    assert (caller["service"], caller["peer"], caller["protocol"]) == ("learner", "echo", "http")
    assert (callee["service"], callee["protocol"]) == ("echo", "http")
    assert callee["trace_id"] == caller["trace_id"] and callee["parent_id"] == caller["span_id"]
    assert caller["start_ns"] <= callee["start_ns"] <= callee["end_ns"] <= caller["end_ns"]
    kept = client.replay(sandbox_id)
    assert [span["seq"] for span in kept] == list(range(1, len(kept) + 1))
    assert {span["span_id"] for span in sent} <= {span["span_id"] for span in kept}
    runs = [m["run"] for m in messages if m["type"] == "sandbox.run"]
    assert runs[0]["progress"] == 0.0 and runs[-1]["progress"] == 1.0
    assert all(run["state"] == "running" and run["experiment"] == "echo" for run in runs)


def test_replay_since_returns_only_later_spans(sandbox):
    run(sandbox, "echo", calls=3)
    kept = spans_after(sandbox, 0, service="echo", kind="server", count=3)
    later = client.replay(sandbox, since=kept[0]["seq"])
    assert later and all(span["seq"] > kept[0]["seq"] for span in later)
    spans, _ = asyncio.run(client.areplay_with_progress(sandbox, kept[0]["seq"], []))
    assert spans == later


def test_grpc_and_amqp_spans_name_their_peer(sandbox):
    since = last_seq(sandbox)
    assert run(sandbox, "greet")["result"]["code"] == "OK"
    assert run(sandbox, "publish", count=1)["state"] == "done"
    caller = spans_after(sandbox, since, service="learner", kind="client")[0]
    assert (caller["protocol"], caller["peer"]) == ("grpc", "greeter")
    received = spans_after(sandbox, since, service="listener", kind="consumer")[0]
    assert (received["protocol"], received["peer"]) == ("amqp", "rabbitmq")
    producer = spans_after(sandbox, since, service="learner", kind="producer")[0]
    assert received["trace_id"] == producer["trace_id"]


def test_delay_fault_shows_in_span_durations_but_not_in_health(sandbox):
    port = client.status(sandbox)["services"]["echo"]["port"]
    service(sandbox, "echo", "delay", delay_ms=300)
    try:
        since = last_seq(sandbox)
        run(sandbox, "echo", calls=1)
        callee = spans_after(sandbox, since, service="echo", kind="server")[0]
        assert callee["end_ns"] - callee["start_ns"] >= 300_000_000
        started = time.monotonic()
        assert asyncio.run(http_health_once(port, 1.0))
        assert time.monotonic() - started < 0.25
    finally:
        service(sandbox, "echo", "clear")


def test_error_fault_fails_calls_and_marks_spans_error(sandbox):
    port = client.status(sandbox)["services"]["greeter"]["port"]
    assert service(sandbox, "echo", "error", error_rate=1.0)["error_rate"] == 1.0
    service(sandbox, "greeter", "error", error_rate=1.0)
    try:
        since = last_seq(sandbox)
        assert run(sandbox, "echo", calls=1)["result"]["statuses"] == [503]
        callee = spans_after(sandbox, since, service="echo", kind="server")[0]
        assert callee["status"] == "error"
        greeting = run(sandbox, "greet")["result"]
        assert greeting["code"] == "UNAVAILABLE"
        grpc_server = spans_after(sandbox, since, service="greeter", kind="server")[0]
        assert grpc_server["status"] == "error"
        assert "injected" in grpc_server["attributes"]["status.description"]
        assert asyncio.run(grpc_health_once(port, 1.0))  # health is never broken
    finally:
        service(sandbox, "echo", "clear")
        service(sandbox, "greeter", "clear")
    assert run(sandbox, "echo", calls=1)["result"]["statuses"] == [200]


async def _first_metrics(sandbox_id: str, source: str, publish: bool = False) -> dict:
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
    channel = await layer.new_channel()
    await layer.group_add(keys.channel_group(sandbox_id), channel)
    await asyncio.to_thread(client.watch, sandbox_id, channel, 30)  # gauges run while watched
    if publish:
        await asyncio.to_thread(run, sandbox_id, "publish", count=2)
    async with asyncio.timeout(5):
        while True:
            message = await layer.receive(channel)
            if message["type"] == "sandbox.metrics" and message["source"] == source:
                # A new watcher gets the newest sample first: it may predate the publish.
                if not publish or message["metrics"].get("received", 0) >= 1:
                    return message


def test_lab_metrics_hook_reaches_the_channel_layer(sandbox):
    message = asyncio.run(_first_metrics(sandbox, "lab"))
    assert message["metrics"]["ticks"] >= 1


def test_service_metrics_reach_the_channel_layer(sandbox):
    message = asyncio.run(_first_metrics(sandbox, "listener", publish=True))
    assert message["metrics"]["received"] >= 1


def test_sample_ratio_zero_leaves_whole_traces_out(sandbox):
    since = last_seq(sandbox)
    assert run(sandbox, "sampled", unsampled=3)["result"]["statuses"] == [200]
    callee = spans_after(sandbox, since, service="echo", kind="server")
    # Only HTTP spans: the AMQP spans of the metrics test above may still be landing.
    kept = [span for span in client.replay(sandbox, since) if span["protocol"] == "http"]
    assert len(callee) == 1  # only the traced call reached the server's spans
    assert {span["kind"] for span in kept} == {"client", "server"}
    assert len({span["trace_id"] for span in kept}) == 1
