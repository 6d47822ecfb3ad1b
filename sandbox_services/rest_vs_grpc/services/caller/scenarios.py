"""The caller's work: call the catalog both ways and report what happened.

Every scenario depends on ``CatalogAPI`` only; the transport is a parameter.
The results are plain JSON for the lab's experiments to shape into charts.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from sandbox_services.rest_vs_grpc.services.caller.wire_meter import WireMeter
from sandbox_services.rest_vs_grpc.services.catalog.client import make_client, make_untraced_client
from sandbox_services.rest_vs_grpc.services.catalog.interface import CatalogAPI, InvalidArgument

TRANSPORTS = ("rest", "grpc")


def _note(**attributes: Any) -> None:
    """Put findings on the caller's current span, where the learner looks for them."""
    span = trace.get_current_span()
    if span.is_recording():
        for name, value in attributes.items():
            span.set_attribute(f"lab.{name}", value)


async def _measured_call(client: CatalogAPI, meter: WireMeter, items: int) -> dict[str, Any]:
    """Make one list call and return its body sizes, wire bytes and latency."""
    await meter.settle()
    sent, received = meter.snapshot()
    started = time.perf_counter()
    await client.list_products(items)
    latency_ms = (time.perf_counter() - started) * 1000
    await meter.settle()
    return {
        "latency_ms": round(latency_ms, 3),
        "request_body_bytes": client.last_sizes[0],
        "response_body_bytes": client.last_sizes[1],
        "wire_sent_bytes": meter.sent - sent,
        "wire_received_bytes": meter.received - received,
    }


async def one_call(addresses: dict[str, str], items: int) -> dict[str, Any]:
    """List the same products each way: once traced, then twice through a byte-counting relay."""
    results: dict[str, Any] = {"items": items}
    pages = {}
    for transport in TRANSPORTS:
        # The call the learner sees in the trace, straight to the catalog.
        client = make_client(transport, addresses[transport])
        try:
            started = time.perf_counter()
            pages[transport] = await client.list_products(items)
            traced = {
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_body_bytes": client.last_sizes[0],
                "response_body_bytes": client.last_sizes[1],
            }
        finally:
            await client.close()
        # The same call measured at the socket, untraced: the relay is not a
        # service of the sandbox, and spans pointing at it would name no peer.
        meter = WireMeter(addresses[transport])
        metered = make_untraced_client(transport, await meter.start())
        try:
            with suppress_instrumentation():
                # The first call opens the connection (and, for HTTP/2, its
                # preface, SETTINGS and a cold header table); the second shows
                # a call's steady-state cost on a connection already open.
                first = await _measured_call(metered, meter, items)
                second = await _measured_call(metered, meter, items)
        finally:
            await metered.close()
            await meter.close()
        results[transport] = {
            "traced": traced,
            "first": first,
            "second": second,
            "connections": meter.connections,
        }
        _note(
            **{
                f"{transport}.response_body_bytes": second["response_body_bytes"],
                f"{transport}.wire_bytes": second["wire_sent_bytes"]
                + second["wire_received_bytes"],
            }
        )
    results["same_data"] = pages["rest"] == pages["grpc"]
    return results


async def _watch(
    client: CatalogAPI, symbol: str, poll_interval_s: float, duration_s: float
) -> dict[str, Any]:
    """Follow a symbol's price for duration_s; return deliveries, requests and staleness."""
    calls_before = client.calls_made
    started_ns = time.time_ns()
    sequences: list[int] = []
    staleness: list[list[float]] = []

    async def follow() -> None:
        async for update in client.watch_prices(symbol, poll_interval_s):
            received_ns = time.time_ns()
            sequences.append(update.sequence)
            staleness.append(
                [
                    round((received_ns - started_ns) / 1e9, 3),
                    round((received_ns - update.emitted_unix_nanos) / 1e6, 3),
                ]
            )

    try:
        await asyncio.wait_for(follow(), duration_s)
    except TimeoutError:
        pass
    values = [point[1] for point in staleness]
    emitted = sequences[-1] - sequences[0] + 1 if sequences else 0
    return {
        "updates_delivered": len(sequences),
        "updates_emitted": emitted,
        "updates_missed": emitted - len(set(sequences)),
        "requests_made": client.calls_made - calls_before,
        # Requests that brought nothing new: the price of polling faster than the data changes.
        "empty_responses": max(0, client.calls_made - calls_before - len(sequences)),
        "staleness_mean_ms": round(sum(values) / len(values), 3) if values else None,
        "staleness_max_ms": round(max(values), 3) if values else None,
        "staleness": staleness,
    }


async def streaming(
    addresses: dict[str, str], symbol: str, duration_s: float, poll_interval_s: float
) -> dict[str, Any]:
    """Follow the ticker by a gRPC server stream and by REST polling, side by side."""
    clients = {transport: make_client(transport, addresses[transport]) for transport in TRANSPORTS}
    try:
        # Each catalog process has its own ticker at the same rate, so the two
        # can run at once without sharing anything but this caller's loop.
        watched = await asyncio.gather(
            *[
                _watch(clients[transport], symbol, poll_interval_s, duration_s)
                for transport in TRANSPORTS
            ]
        )
    finally:
        for client in clients.values():
            await client.close()
    result = dict(zip(TRANSPORTS, watched, strict=True))
    for transport in TRANSPORTS:
        _note(
            **{
                f"{transport}.updates_delivered": result[transport]["updates_delivered"],
                f"{transport}.requests_made": result[transport]["requests_made"],
            }
        )
    result.update(duration_s=duration_s, poll_interval_s=poll_interval_s)
    return result


async def _attempt(client: CatalogAPI, product_id: int, count: Any) -> dict[str, Any]:
    """Try one reservation; report what refused it and whether the server ever saw it."""
    before = (await client.server_stats()).calls.get("Reserve", 0)
    outcome: dict[str, Any] = {"sent_count": repr(count)}
    try:
        reservation = await client.reserve(product_id, count)
        outcome.update(outcome="accepted", detail=f"reservation {reservation.reservation_id}")
    except TypeError as error:
        # Raised by the generated message class, in this process, pre-send.
        outcome.update(outcome="refused by the client stub", error="TypeError", detail=str(error))
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(error)
    except InvalidArgument as error:
        outcome.update(outcome="refused by the server", error="InvalidArgument", detail=str(error))
    after = (await client.server_stats()).calls.get("Reserve", 0)
    outcome["server_saw_it"] = after > before
    return outcome


async def contract(addresses: dict[str, str], product_id: int = 7) -> dict[str, Any]:
    """Send a wrongly typed count, and a missing one, each way."""
    clients = {transport: make_client(transport, addresses[transport]) for transport in TRANSPORTS}
    attempts = []
    try:
        for transport in TRANSPORTS:
            for label, count in (
                ("wrong type", "ten"),
                ("zero, which proto3 cannot tell from left out", 0),
                ("correct", 10),
            ):
                outcome = await _attempt(clients[transport], product_id, count)
                attempts.append({"transport": transport, "case": label, **outcome})
    finally:
        for client in clients.values():
            await client.close()
    wrong = {a["transport"]: a for a in attempts if a["case"] == "wrong type"}
    _note(
        **{
            "rest.wrong_type": wrong["rest"]["outcome"],
            "grpc.wrong_type": wrong["grpc"]["outcome"],
        }
    )
    return {"attempts": attempts}


async def _fan_out(client: CatalogAPI, window: str, calls: int, hold_ms: int) -> dict[str, Any]:
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *[client.hold(window, hold_ms) for _ in range(calls)], return_exceptions=True
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    stats = await client.server_stats(window)
    return {
        "elapsed_ms": round(elapsed_ms, 1),
        "errors": sum(isinstance(outcome, Exception) for outcome in outcomes),
        "connections_seen_by_server": stats.window_connections,
        "calls_seen_by_server": stats.window_calls,
    }


async def multiplexing(
    addresses: dict[str, str], calls: int, hold_ms: int, rest_connection_limit: int
) -> dict[str, Any]:
    """Fire many slow calls at once: over one HTTP/2 channel, and over HTTP/1.1 connections."""
    result: dict[str, Any] = {
        "calls": calls,
        "hold_ms": hold_ms,
        "rest_connection_limit": rest_connection_limit,
    }
    for transport in TRANSPORTS:
        options = (
            {"connection_limit": rest_connection_limit, "count_connections": True}
            if transport == "rest"
            else {}
        )
        client = make_client(transport, addresses[transport], **options)
        try:
            outcome = await _fan_out(client, uuid.uuid4().hex, calls, hold_ms)
        finally:
            await client.close()
        if transport == "rest":
            outcome["connections_opened_by_client"] = client.connections_opened
            # HTTP/1.1: one exchange per connection at a time, so calls wait in rounds.
            outcome["expected_ms"] = math.ceil(calls / rest_connection_limit) * hold_ms
        else:
            outcome["expected_ms"] = hold_ms
        result[transport] = outcome
        _note(**{f"{transport}.connections": outcome["connections_seen_by_server"]})
    return result
