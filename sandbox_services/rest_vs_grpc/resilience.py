"""Deadlines and retries: what a gRPC caller does when the catalog is slow or failing.

``deadlines`` gives one call a deadline shorter than the catalog's work and one
call none; the catalog records, on its own counters, whether it finished or was
cancelled. ``retries`` sends the same calls to a catalog that refuses a share of
attempts, once without retries and once with gRPC's own retry policy
(exponential backoff with jitter, from the channel's service config), and
divides the attempts the server counted by the calls the client made.

Each experiment drives and returns measured figures; ``*_result`` writes them.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc

from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2 as pb
from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2_grpc as pb_grpc
from sandbox_services.rest_vs_grpc import knobs
from sandbox_services.rest_vs_grpc.results import failed
from sandbox_services.runtime.spec import ExperimentContext

METHOD_SERVICE = pb.DESCRIPTOR.services_by_name["Catalog"].full_name


async def _calls(stub: pb_grpc.CatalogStub, window: str = "") -> dict[str, int]:
    """Return the catalog's own call counters (and this window's count under "window")."""
    stats = await stub.GetServerStats(pb.ServerStatsRequest(window=window), timeout=5)
    return {**dict(stats.calls), "window": stats.window_calls}


async def _outcome(stub: pb_grpc.CatalogStub, window: str, limit_s: float) -> str:
    """Wait until the server has recorded how the window's call ended; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        calls = await _calls(stub)
        for outcome in ("cancelled", "completed"):
            if calls.get(f"SlowLookup.{outcome}:{window}"):
                return outcome
        if loop.time() > deadline:
            return "still working"
        await asyncio.sleep(0.02)


async def _slow_call(
    stub: pb_grpc.CatalogStub, window: str, work_ms: int, deadline_ms: int | None
) -> dict[str, Any]:
    """Make one SlowLookup call; return what the client saw and what the server recorded."""
    request = pb.LookupRequest(product_id=7, window=window, work_ms=work_ms)
    timeout = deadline_ms / 1000 if deadline_ms else None
    started = time.perf_counter()
    try:
        await stub.SlowLookup(request, timeout=timeout)
        status = "OK"
    except grpc.aio.AioRpcError as error:
        status = error.code().name
    waited_ms = round((time.perf_counter() - started) * 1000, 1)
    # The server learns of the cancel a moment after the client gives up.
    server = await _outcome(stub, window, limit_s=work_ms / 1000 + 2)
    return {"deadline_ms": deadline_ms, "status": status, "waited_ms": waited_ms, "server": server}


async def deadlines(ctx: ExperimentContext, params: dict) -> dict:
    """Call a slow catalog with a deadline and without; show who stopped waiting and who stopped working."""
    work_ms, deadline_ms = params["work_ms"], params["deadline_ms"]
    ctx.set_sample_ratio(1.0)
    calls = []
    try:
        async with grpc.aio.insecure_channel(ctx.address("catalog-grpc")) as channel:
            stub = pb_grpc.CatalogStub(channel)
            for step, deadline in enumerate((deadline_ms, None)):
                await ctx.progress(
                    0.1 + 0.4 * step,
                    f"{work_ms} ms of work, "
                    + (f"a {deadline} ms deadline" if deadline else "no deadline"),
                )
                window = f"deadline-{ctx.run_id}-{step}"
                calls.append(await _slow_call(stub, window, work_ms, deadline))
    except grpc.aio.AioRpcError as error:
        return failed("The deadline run did not complete.", error)
    await ctx.progress(1.0, "done")
    return deadlines_result(work_ms=work_ms, calls=calls)


def deadlines_result(*, work_ms: int, calls: list[dict]) -> dict:
    """Return the deadline experiment's result in RESULT_SHAPE."""
    bounded, unbounded = calls
    return {
        "headline": (
            f"With a {bounded['deadline_ms']} ms deadline the client got {bounded['status']} "
            f"after {bounded['waited_ms']:.0f} ms and the server recorded its call as "
            f"{bounded['server']}; with no deadline the client waited "
            f"{unbounded['waited_ms']:.0f} ms ({unbounded['status']}) for {work_ms} ms of work."
        ),
        "summary": [
            {"label": "deadline", "value": bounded["deadline_ms"], "unit": "ms"},
            {"label": "client status (deadline)", "value": bounded["status"], "unit": ""},
            {"label": "client waited (deadline)", "value": bounded["waited_ms"], "unit": "ms"},
            {"label": "server: call (deadline)", "value": bounded["server"], "unit": ""},
            {"label": "client waited (no deadline)", "value": unbounded["waited_ms"], "unit": "ms"},
        ],
        "charts": [
            {
                "title": "How long the client waited",
                "type": "bar",
                "x_label": "call",
                "y_label": "ms",
                "categories": [f"deadline {bounded['deadline_ms']} ms", "no deadline"],
                "series": [
                    {"name": "client waited", "values": [c["waited_ms"] for c in calls]},
                ],
            }
        ],
        "table": {
            "columns": ["deadline ms", "client status", "client waited ms", "server recorded"],
            "rows": [
                [c["deadline_ms"] or "none", c["status"], c["waited_ms"], c["server"]]
                for c in calls
            ],
        },
        "notes": [
            (
                "'server recorded' is read back from the catalog's own counters: 'cancelled' means "
                "its handler was interrupted before it finished the work, 'completed' that it "
                "finished and sent the answer."
            ),
            (
                "The deadline travelled in the grpc-timeout request header: the catalog-grpc server "
                "span carries lab.deadline.remaining_ms, what was left of it when the call arrived, "
                "and a 'cancelled' event on the call given up on."
            ),
            (
                "This catalog calls nothing further. A server that does must pass the remaining "
                "deadline on itself in Python (Go and Java propagate it through the context)."
            ),
        ],
        "ok": bounded["status"] == "DEADLINE_EXCEEDED"
        and bounded["server"] == "cancelled"
        and unbounded["status"] == "OK",
    }


def retry_service_config(max_attempts: int) -> str:
    """Return the channel's service config: gRPC's retry policy for FlakyLookup, or none."""
    method: dict[str, Any] = {"name": [{"service": METHOD_SERVICE, "method": "FlakyLookup"}]}
    if max_attempts > 1:
        method["retryPolicy"] = {
            "maxAttempts": max_attempts,
            "initialBackoff": f"{knobs.RETRY_INITIAL_BACKOFF_S}s",
            "maxBackoff": f"{knobs.RETRY_MAX_BACKOFF_S}s",
            "backoffMultiplier": knobs.RETRY_BACKOFF_MULTIPLIER,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"methodConfig": [method]})


async def _retry_batch(
    address: str, window: str, calls: int, failure_ratio: float, max_attempts: int
) -> dict[str, Any]:
    """Make ``calls`` FlakyLookup calls through a channel with the given retry policy."""
    options = [("grpc.service_config", retry_service_config(max_attempts))]
    if max_attempts > 1:
        options.append(("grpc.enable_retries", 1))
    else:
        # Off for this batch: the default channel would use any policy it is given.
        options.append(("grpc.enable_retries", 0))
    succeeded, failed_codes = 0, {}
    gate = asyncio.Semaphore(knobs.RETRY_CONCURRENCY)
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = pb_grpc.CatalogStub(channel)
        request = pb.LookupRequest(product_id=3, window=window, failure_ratio=failure_ratio)

        async def one() -> None:
            nonlocal succeeded
            async with gate:
                try:
                    await stub.FlakyLookup(request, timeout=10)
                    succeeded += 1
                except grpc.aio.AioRpcError as error:
                    name = error.code().name
                    failed_codes[name] = failed_codes.get(name, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        server = await _calls(stub, window)
    attempts = server["window"]
    return {
        "max_attempts": max_attempts,
        "calls": calls,
        "succeeded": succeeded,
        "failed": sum(failed_codes.values()),
        "failed_codes": failed_codes,
        "server_attempts": attempts,
        "server_refused": server.get(f"FlakyLookup.refused:{window}", 0),
        "amplification": round(attempts / calls, 3),
        "elapsed_ms": elapsed_ms,
    }


async def retries(ctx: ExperimentContext, params: dict) -> dict:
    """Call a catalog that refuses a share of attempts, without and with retries; count attempts at the server."""
    calls, failure_ratio = params["calls"], params["failure_ratio"]
    max_attempts = params["max_attempts"]
    ctx.set_sample_ratio(knobs.RETRY_SAMPLE_RATIO)
    batches = []
    try:
        for step, attempts in enumerate((1, max_attempts)):
            await ctx.progress(0.1 + 0.4 * step, f"{calls} calls, at most {attempts} attempts each")
            window = f"retry-{ctx.run_id}-{step}"
            batches.append(
                await _retry_batch(
                    ctx.address("catalog-grpc"), window, calls, failure_ratio, attempts
                )
            )
    except grpc.aio.AioRpcError as error:
        return failed("The retry run did not complete.", error)
    finally:
        ctx.set_sample_ratio(1.0)
    await ctx.progress(1.0, "done")
    return retries_result(failure_ratio=failure_ratio, batches=batches)


def retries_result(*, failure_ratio: float, batches: list[dict]) -> dict:
    """Return the retry experiment's result in RESULT_SHAPE."""
    plain, retried = batches
    n, p = retried["max_attempts"], failure_ratio
    # The figure a model of independent failures predicts, beside the measured one.
    expected = round((1 - p**n) / (1 - p), 3) if p < 1 else float(n)
    return {
        "headline": (
            f"{retried['calls']} calls with up to {n} attempts: the server received "
            f"{retried['server_attempts']} requests ({retried['amplification']}x the calls) and "
            f"{retried['succeeded']} calls succeeded; without retries "
            f"{plain['succeeded']} of {plain['calls']} succeeded."
        ),
        "summary": [
            {
                "label": "load amplification (with retries)",
                "value": retried["amplification"],
                "unit": "x",
            },
            {"label": "succeeded (with retries)", "value": retried["succeeded"], "unit": ""},
            {"label": "succeeded (no retries)", "value": plain["succeeded"], "unit": ""},
            {"label": "requests at the server", "value": retried["server_attempts"], "unit": ""},
            {"label": "independent-failure model predicts", "value": expected, "unit": "x"},
        ],
        "charts": [
            {
                "title": "Calls made and requests the server received",
                "type": "bar",
                "x_label": "",
                "y_label": "count",
                "categories": ["client calls", "server received", "succeeded", "failed"],
                "series": [
                    {
                        "name": f"max {b['max_attempts']} attempt(s)",
                        "values": [
                            b["calls"],
                            b["server_attempts"],
                            b["succeeded"],
                            b["failed"],
                        ],
                    }
                    for b in batches
                ],
            }
        ],
        "table": {
            "columns": [
                "max attempts",
                "client calls",
                "server received",
                "server refused",
                "amplification",
                "succeeded",
                "failed",
                "elapsed ms",
            ],
            "rows": [
                [
                    b["max_attempts"],
                    b["calls"],
                    b["server_attempts"],
                    b["server_refused"],
                    b["amplification"],
                    b["succeeded"],
                    b["failed"],
                    b["elapsed_ms"],
                ]
                for b in batches
            ],
        },
        "notes": [
            (
                "'server received' is the catalog's own count of FlakyLookup requests in each "
                "batch; amplification is that count divided by the calls the client made."
            ),
            (
                f"Model, not measurement: if each attempt fails independently with probability "
                f"{p:g}, a call makes (1 - p^n)/(1 - p) = {expected} attempts on average and "
                f"fails with probability p^n."
            ),
            (
                "The retries are gRPC's own, from the channel's service config "
                f"(initialBackoff {knobs.RETRY_INITIAL_BACKOFF_S}s, multiplier "
                f"{knobs.RETRY_BACKOFF_MULTIPLIER}, maxBackoff {knobs.RETRY_MAX_BACKOFF_S}s, "
                "retryable UNAVAILABLE). The wait before retry n is drawn at random between 0 "
                "and min(initialBackoff x multiplier^(n-1), maxBackoff): full jitter, as gRFC A6 "
                "specifies (the claim of the specification, not timed here)."
            ),
            (
                "The catalog-grpc spans carry lab.previous_attempts, from the "
                "grpc-previous-rpc-attempts header gRPC adds to each retry."
            ),
        ],
        "batches": batches,
        "ok": retried["server_attempts"] >= retried["calls"]
        and plain["server_attempts"] == plain["calls"],
    }
