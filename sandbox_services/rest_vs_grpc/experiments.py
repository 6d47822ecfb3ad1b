"""The REST vs gRPC experiments: ``async def name(ctx, params) -> dict`` in RESULT_SHAPE.

Single-call experiments go learner -> caller -> catalog-rest / catalog-grpc
and trace every call. The load experiment forks one load generator per
transport against the catalog servers directly, with sampled traces.
"""

from __future__ import annotations

from sandbox_services.rest_vs_grpc.services.caller.client import CallerClient, CallerError
from sandbox_services.rest_vs_grpc import knobs
from sandbox_services.rest_vs_grpc.load import generate_load
from sandbox_services.rest_vs_grpc.load_report import load_result
from sandbox_services.rest_vs_grpc.results import LABELS, failed, ratio
from sandbox_services.rest_vs_grpc.serialization import measure_serialization
from sandbox_services.runtime.spec import ExperimentContext

SERVICES = {"rest": "catalog-rest", "grpc": "catalog-grpc"}


def measured_interval_ms(points: list) -> float:
    """Return the mean gap between consecutive arrivals, ms, from [seconds, ...] points."""
    if len(points) < 2:
        return 0.0
    return round((points[-1][0] - points[0][0]) * 1000 / (len(points) - 1), 1)


async def one_call(ctx: ExperimentContext, params: dict) -> dict:
    """List the same products once over REST and once over gRPC; compare bytes on the wire."""
    items = params["items"]
    ctx.set_sample_ratio(1.0)
    await ctx.progress(0.1, "calling through the caller")
    try:
        async with CallerClient(ctx.address("caller")) as caller:
            data = await caller.one_call(items)
    except CallerError as error:
        return failed("The call did not complete.", error)
    await ctx.progress(1.0, "done")
    rest, grpc = data["rest"], data["grpc"]

    def wire(call: dict) -> int:
        return call["wire_sent_bytes"] + call["wire_received_bytes"]

    rest_body = rest["second"]["response_body_bytes"]
    grpc_body = grpc["second"]["response_body_bytes"]
    call_names = {
        "traced": "traced (the call in the trace)",
        "first": "metered, first (opens the connection)",
        "second": "metered, second (connection open)",
    }
    rows = []
    for transport in ("rest", "grpc"):
        for which, name in call_names.items():
            call = data[transport][which]
            rows.append(
                [
                    LABELS[transport],
                    name,
                    call["request_body_bytes"],
                    call["response_body_bytes"],
                    call.get("wire_sent_bytes", ""),
                    call.get("wire_received_bytes", ""),
                    call["latency_ms"],
                ]
            )
    return {
        "headline": (
            f"{items} products: the JSON body is {rest_body} B, the protobuf body {grpc_body} B "
            f"({ratio(rest_body, grpc_body)}x smaller); on an open connection one call moved "
            f"{wire(rest['second'])} B over HTTP/1.1 and {wire(grpc['second'])} B over HTTP/2."
        ),
        "summary": [
            {"label": "JSON response body", "value": rest_body, "unit": "B"},
            {"label": "protobuf response body", "value": grpc_body, "unit": "B"},
            {"label": "REST call on the wire", "value": wire(rest["second"]), "unit": "B"},
            {"label": "gRPC call on the wire", "value": wire(grpc["second"]), "unit": "B"},
            {"label": "same data both ways", "value": data["same_data"], "unit": ""},
        ],
        "charts": [
            {
                "title": "Bytes for the same products",
                "type": "bar",
                "x_label": "what is counted",
                "y_label": "bytes",
                "categories": ["response body", "wire: first call", "wire: next call"],
                "series": [
                    {
                        "name": LABELS[t],
                        "values": [
                            data[t]["second"]["response_body_bytes"],
                            wire(data[t]["first"]),
                            wire(data[t]["second"]),
                        ],
                    }
                    for t in ("rest", "grpc")
                ],
            }
        ],
        "table": {
            "columns": [
                "transport",
                "call",
                "request body B",
                "response body B",
                "wire sent B",
                "wire received B",
                "latency ms",
            ],
            "rows": rows,
        },
        "notes": [
            "Body bytes: the serialized JSON document or protobuf message alone.",
            (
                "Wire bytes: everything the TCP connection carried for the call, both ways, counted "
                "by a relay between caller and catalog (for two untraced repeats of the call, so "
                "the trace shows only the real one): HTTP/1.1 request line and headers, or "
                "HTTP/2 frames with HPACK-compressed headers, gRPC's 5-byte message prefix and "
                "trailers, and connection control frames. Both carry a W3C traceparent header, "
                "as traced calls do. TCP/IP headers are not counted."
            ),
            (
                "The first call on a connection also carries HTTP/2's preface and SETTINGS and "
                "fills the HPACK header table; the second shows the steady state."
            ),
            (
                "Every call was traced: the catalog server spans carry the body sizes "
                "(http.response.body.size, rpc.response.body.size)."
            ),
        ],
        "ok": bool(data["same_data"]) and grpc_body < rest_body,
    }


async def load(ctx: ExperimentContext, params: dict) -> dict:
    """Load each catalog in turn from a forked generator; compare throughput and latency."""
    concurrency, duration_s = params["concurrency"], params["duration_s"]
    items, sample_ratio = params["items"], params["sample_ratio"]
    results: dict[str, dict] = {}
    # Tracing every call would measure the tracer (it halves a Python
    # service's throughput): sample during the load, trace everything after.
    ctx.set_sample_ratio(sample_ratio)
    try:
        for step, transport in enumerate(("rest", "grpc")):
            await ctx.progress(
                0.05 + 0.4 * step,
                f"{LABELS[transport]}: {concurrency} calls in flight for {duration_s:g} s",
            )
            # One at a time, each generator in its own process: they never
            # compete with each other, nor share a GIL with a server.
            results[transport] = await ctx.fork(
                generate_load,
                transport,
                ctx.address(SERVICES[transport]),
                concurrency,
                duration_s,
                items,
                knobs.LOAD_WARMUP_CALLS,
            )
    except RuntimeError as error:
        return failed("The load run did not complete.", error)
    finally:
        ctx.set_sample_ratio(1.0)
    await ctx.progress(0.85, "timing JSON and protobuf in-process")
    costs = measure_serialization(items)
    await ctx.progress(1.0, "done")

    return load_result(
        ctx.workdir,
        concurrency=concurrency,
        duration_s=duration_s,
        items=items,
        sample_ratio=sample_ratio,
        results=results,
        costs=costs,
    )


async def streaming(ctx: ExperimentContext, params: dict) -> dict:
    """Follow the price ticker by a gRPC server stream and by REST polling."""
    duration_s, poll_ms = params["duration_s"], params["poll_interval_ms"]
    ctx.set_sample_ratio(1.0)
    await ctx.progress(0.1, f"following the ticker for {duration_s:g} s")
    try:
        async with CallerClient(ctx.address("caller")) as caller:
            data = await caller.streaming(duration_s, poll_ms)
    except CallerError as error:
        return failed("The streaming run did not complete.", error)
    await ctx.progress(1.0, "done")
    rest, grpc = data["rest"], data["grpc"]
    interval_ms = float(ctx.settings.get("ticker_interval_s", knobs.TICKER_INTERVAL_S)) * 1000
    measured_ms = measured_interval_ms(grpc["staleness"])
    return {
        "headline": (
            f"In {duration_s:g} s the stream delivered {grpc['updates_delivered']} updates "
            f"from {grpc['requests_made']} call; polling every {poll_ms} ms saw "
            f"{rest['updates_delivered']} of {rest['updates_emitted']} with "
            f"{rest['requests_made']} requests."
        ),
        "summary": [
            {"label": "gRPC updates delivered", "value": grpc["updates_delivered"], "unit": ""},
            {"label": "REST updates delivered", "value": rest["updates_delivered"], "unit": ""},
            {"label": "REST updates missed", "value": rest["updates_missed"], "unit": ""},
            {"label": "gRPC mean staleness", "value": grpc["staleness_mean_ms"], "unit": "ms"},
            {"label": "REST mean staleness", "value": rest["staleness_mean_ms"], "unit": "ms"},
        ],
        "charts": [
            {
                "title": "Updates and requests",
                "type": "bar",
                "x_label": "",
                "y_label": "count",
                "categories": [
                    "updates delivered",
                    "updates missed",
                    "requests made",
                    "empty responses",
                ],
                "series": [
                    {
                        "name": LABELS[t],
                        "values": [
                            data[t]["updates_delivered"],
                            data[t]["updates_missed"],
                            data[t]["requests_made"],
                            data[t]["empty_responses"],
                        ],
                    }
                    for t in ("rest", "grpc")
                ],
            },
            {
                "title": "Staleness of each update when it arrived",
                "type": "line",
                "x_label": "seconds into the run",
                "y_label": "ms since the ticker emitted it",
                "series": [
                    {"name": LABELS[t], "points": data[t]["staleness"]} for t in ("rest", "grpc")
                ],
            },
        ],
        "table": {
            "columns": [
                "transport",
                "requests",
                "empty responses",
                "delivered",
                "emitted",
                "missed",
                "mean staleness ms",
                "max staleness ms",
            ],
            "rows": [
                [
                    LABELS[t],
                    data[t]["requests_made"],
                    data[t]["empty_responses"],
                    data[t]["updates_delivered"],
                    data[t]["updates_emitted"],
                    data[t]["updates_missed"],
                    data[t]["staleness_mean_ms"],
                    data[t]["staleness_max_ms"],
                ]
                for t in ("rest", "grpc")
            ],
        },
        "notes": [
            (
                f"The ticker is set to emit a price every {interval_ms:g} ms "
                "(TICKER_INTERVAL_S); the stream's updates arrived one every "
                f"{measured_ms:g} ms on average in this run."
            ),
            (
                "Staleness: the caller's clock when an update arrived minus the ticker's clock "
                "when it was emitted (same machine, same clock)."
            ),
            "Emitted counts the sequence numbers between the first and last update seen.",
            (
                "A stream's first update is the latest price at subscription, so it can be up to "
                "one tick old; in this run the stream's updates arrived "
                f"{grpc['staleness_mean_ms']} ms after they were emitted on average "
                f"({grpc['staleness_max_ms']} ms at most)."
            ),
        ],
        "ok": grpc["requests_made"] == 1 and grpc["updates_missed"] == 0,
    }


async def contract(ctx: ExperimentContext, params: dict) -> dict:
    """Reserve with count="ten" each way: who refuses it, and did the server ever see it?"""
    ctx.set_sample_ratio(1.0)
    await ctx.progress(0.1, "sending a wrongly typed count")
    try:
        async with CallerClient(ctx.address("caller")) as caller:
            data = await caller.contract()
    except CallerError as error:
        return failed("The contract run did not complete.", error)
    await ctx.progress(1.0, "done")
    attempts = data["attempts"]
    wrong = {a["transport"]: a for a in attempts if a["case"] == "wrong type"}
    rest_ok = wrong["rest"]["outcome"] == "refused by the server" and wrong["rest"]["server_saw_it"]
    grpc_ok = wrong["grpc"]["error"] == "TypeError" and not wrong["grpc"]["server_saw_it"]
    return {
        "headline": (
            f'count="ten": REST {wrong["rest"]["outcome"]} ({wrong["rest"].get("error", "")}: '
            f"{wrong['rest']['detail']}); gRPC {wrong['grpc']['outcome']} "
            f"({wrong['grpc'].get('error', '')}), and the gRPC server's Reserve counter "
            + ("did not move." if not wrong["grpc"]["server_saw_it"] else "moved.")
        )
        if rest_ok and grpc_ok
        else "The contract run did not behave as the lesson expects: see the table.",
        "summary": [
            {
                "label": "REST: server saw the bad request",
                "value": wrong["rest"]["server_saw_it"],
                "unit": "",
            },
            {
                "label": "gRPC: server saw the bad request",
                "value": wrong["grpc"]["server_saw_it"],
                "unit": "",
            },
        ],
        "table": {
            "columns": [
                "transport",
                "case",
                "count sent",
                "outcome",
                "error",
                "detail",
                "server saw it",
            ],
            "rows": [
                [
                    LABELS[a["transport"]],
                    a["case"],
                    a["sent_count"],
                    a["outcome"],
                    a.get("error", ""),
                    a["detail"],
                    a["server_saw_it"],
                ]
                for a in attempts
            ],
        },
        "notes": [
            (
                "Where to look in the trace (what this code records; the run does not check it): "
                "the REST attempt has a catalog-rest server span in error with the refusal's "
                "reason and its HTTP status; the gRPC attempt has no client span and no server "
                "span, only the TypeError as an exception event on the caller's span."
            ),
            "'server saw it' compares the server's own Reserve counter before and after.",
            (
                "proto3 fields have no 'required': a count left out arrives as 0, so the server "
                "must still check values; the contract fixes types, not meaning."
            ),
        ],
        "ok": rest_ok and grpc_ok,
    }


async def multiplexing(ctx: ExperimentContext, params: dict) -> dict:
    """Fire many slow calls at once over one HTTP/2 connection and over HTTP/1.1 connections."""
    calls, hold_ms, limit = params["calls"], params["hold_ms"], params["rest_connections"]
    ctx.set_sample_ratio(1.0)
    await ctx.progress(0.1, f"{calls} calls at once each way")
    try:
        async with CallerClient(ctx.address("caller")) as caller:
            data = await caller.multiplexing(calls, hold_ms, limit)
    except CallerError as error:
        return failed("The multiplexing run did not complete.", error)
    await ctx.progress(1.0, "done")
    rest, grpc = data["rest"], data["grpc"]
    return {
        "headline": (
            f"{calls} concurrent calls: gRPC used {grpc['connections_seen_by_server']} TCP "
            f"connection and took {grpc['elapsed_ms']:.0f} ms; REST used "
            f"{rest['connections_seen_by_server']} and took {rest['elapsed_ms']:.0f} ms."
        ),
        "summary": [
            {"label": "gRPC connections", "value": grpc["connections_seen_by_server"], "unit": ""},
            {"label": "REST connections", "value": rest["connections_seen_by_server"], "unit": ""},
            {"label": "gRPC elapsed", "value": grpc["elapsed_ms"], "unit": "ms"},
            {"label": "REST elapsed", "value": rest["elapsed_ms"], "unit": "ms"},
        ],
        # Two charts: on one axis, a handful of connections would be invisible next to
        # hundreds of milliseconds.
        "charts": [
            {
                "title": "Time taken",
                "type": "bar",
                "x_label": "",
                "y_label": "ms",
                "categories": ["elapsed", "expected"],
                "series": [
                    {
                        "name": LABELS[t],
                        "values": [data[t]["elapsed_ms"], data[t]["expected_ms"]],
                    }
                    for t in ("rest", "grpc")
                ],
            },
            {
                "title": "TCP connections the server saw",
                "type": "bar",
                "x_label": "",
                "y_label": "connections",
                "categories": ["TCP connections"],
                "series": [
                    {"name": LABELS[t], "values": [data[t]["connections_seen_by_server"]]}
                    for t in ("rest", "grpc")
                ],
            },
        ],
        "table": {
            "columns": [
                "transport",
                "calls",
                "connections (server saw)",
                "elapsed ms",
                "expected ms (calculated)",
                "errors",
            ],
            "rows": [
                [
                    LABELS[t],
                    data[t]["calls_seen_by_server"],
                    data[t]["connections_seen_by_server"],
                    data[t]["elapsed_ms"],
                    data[t]["expected_ms"],
                    data[t]["errors"],
                ]
                for t in ("rest", "grpc")
            ],
        },
        "notes": [
            (
                "Connections are counted by the servers: the distinct client (address, port) pairs "
                "that carried this run's calls."
            ),
            (
                f"The REST client may open at most {limit} connections to the catalog (browsers "
                "allow 6 per host: Chrome's and Firefox's default, a claim, not measured here); "
                "HTTP/1.1 carries one exchange per connection at a time, so "
                f"{calls} calls of {hold_ms} ms queue in rounds."
            ),
            (
                "Expected ms is calculated, not measured: ceil(calls / connections) x hold_ms "
                "for REST, hold_ms for gRPC."
            ),
            (
                f"gRPC opened one channel; the catalog-grpc server saw its {calls} calls arrive "
                f"on {grpc['connections_seen_by_server']} TCP connection(s)."
            ),
        ],
        "ok": grpc["connections_seen_by_server"] == 1
        and rest["connections_seen_by_server"] == min(calls, limit)
        and rest["errors"] + grpc["errors"] == 0,
    }
