"""Shape the load experiment's result: this run, the kept runs, and where the time goes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sandbox_services.rest_vs_grpc import knobs
from sandbox_services.rest_vs_grpc.results import LABELS, ratio

RUNS_FILE = "rest-vs-grpc-load-runs.json"


def keep_run(workdir: Path, run: dict) -> list[dict]:
    """Append a run to the sandbox's kept runs; return them, newest first."""
    path = Path(workdir) / RUNS_FILE
    try:
        runs = json.loads(path.read_text())
    except (OSError, ValueError):
        runs = []
    runs = [run, *runs][: knobs.LOAD_RUNS_KEPT]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs))
    return runs


def _time_per_request(costs: dict, results: dict) -> list[dict]:
    """Return the 'where the time goes' chart: serialization beside time per request."""
    categories = [
        "server: map + serialize",
        "client: parse + map back",
        "one request at measured rps",
    ]
    series = []
    for transport, codec in (("rest", "json"), ("grpc", "protobuf")):
        cost = costs[codec]
        rps = results[transport]["rps"]
        series.append(
            {
                "name": LABELS[transport],
                "values": [
                    round(cost["map_us"] + cost["serialize_us"], 1),
                    round(cost["parse_us"] + cost["unmap_us"], 1),
                    round(1e6 / rps, 1) if rps else 0.0,
                ],
            }
        )
    return [
        {
            "title": "Where the time goes (microseconds per request)",
            "type": "bar",
            "x_label": "step",
            "y_label": "µs",
            "categories": categories,
            "series": series,
        }
    ]


def load_result(
    workdir: Path,
    *,
    concurrency: int,
    duration_s: float,
    items: int,
    sample_ratio: float,
    results: dict[str, dict],
    costs: dict,
) -> dict:
    """Keep this run and return the load experiment's result in RESULT_SHAPE."""
    rest, grpc = results["rest"], results["grpc"]
    run = {
        "at": time.strftime("%H:%M:%S"),
        "concurrency": concurrency,
        "duration_s": duration_s,
        "items": items,
        "sample_ratio": sample_ratio,
        "rest": rest,
        "grpc": grpc,
    }
    runs = keep_run(workdir, run)
    faster = "gRPC" if grpc["rps"] > rest["rps"] else "REST"
    speedup = ratio(max(grpc["rps"], rest["rps"]), min(grpc["rps"], rest["rps"]))
    errors = rest["errors"] + grpc["errors"]
    notes = [
        (
            f"Traces were sampled at {sample_ratio:.0%} during the load (and at 100% again after): "
            "tracing every request would measure the tracer, not the transport (the lab's own "
            "earlier measurement, a claim here: tracing every call about halved a Python echo "
            "service's throughput; set sample_ratio to 1.0 to measure it yourself). Sampled calls "
            "appear in the trace as 'load call' spans."
        ),
        (
            "Each load generator ran in its own process, REST first, then gRPC, never at once; "
            "each kept its concurrency calls in flight (a closed loop)."
        ),
        (
            f"Serialization was timed in-process on the same {items}-product page: "
            f"JSON {costs['json']['bytes']} B, protobuf {costs['protobuf']['bytes']} B. "
            "'map' is Python code building the dict or message from domain objects."
        ),
        (
            "Both servers and the generators share this machine's cores with everything else "
            "running on it: run twice and compare before trusting a small difference."
        ),
    ]
    if errors:
        notes.insert(0, f"{errors} calls failed (an injected fault or a stopped service?).")
    return {
        "headline": (
            f"{faster} served {speedup}x the requests per second: REST {rest['rps']:.0f}/s "
            f"(p99 {rest['p99_ms']:.1f} ms) against gRPC {grpc['rps']:.0f}/s "
            f"(p99 {grpc['p99_ms']:.1f} ms), {items} products a call, {concurrency} in flight."
        ),
        "summary": [
            {"label": "REST throughput", "value": rest["rps"], "unit": "req/s"},
            {"label": "gRPC throughput", "value": grpc["rps"], "unit": "req/s"},
            {"label": "REST p99", "value": rest["p99_ms"], "unit": "ms"},
            {"label": "gRPC p99", "value": grpc["p99_ms"], "unit": "ms"},
            {"label": "errors", "value": errors, "unit": ""},
            {"label": "trace sample ratio during load", "value": sample_ratio, "unit": ""},
        ],
        "charts": [
            {
                "title": "Latency percentiles",
                "type": "bar",
                "x_label": "percentile",
                "y_label": "ms",
                "categories": ["p50", "p95", "p99"],
                "series": [
                    {"name": LABELS[t], "values": [r["p50_ms"], r["p95_ms"], r["p99_ms"]]}
                    for t, r in results.items()
                ],
            },
            {
                "title": "Throughput across your runs (newest first)",
                "type": "bar",
                "x_label": "run",
                "y_label": "requests/s",
                "categories": [f"{r['at']} c={r['concurrency']} n={r['items']}" for r in runs],
                "series": [
                    {"name": LABELS[t], "values": [r[t]["rps"] for r in runs]}
                    for t in ("rest", "grpc")
                ],
            },
            *_time_per_request(costs, results),
        ],
        "table": {
            "columns": [
                "run",
                "concurrency",
                "items",
                "duration s",
                "REST req/s",
                "gRPC req/s",
                "REST p50 ms",
                "gRPC p50 ms",
                "REST p99 ms",
                "gRPC p99 ms",
            ],
            "rows": [
                [
                    r["at"] + (" (this run)" if index == 0 else ""),
                    r["concurrency"],
                    r["items"],
                    r["duration_s"],
                    r["rest"]["rps"],
                    r["grpc"]["rps"],
                    r["rest"]["p50_ms"],
                    r["grpc"]["p50_ms"],
                    r["rest"]["p99_ms"],
                    r["grpc"]["p99_ms"],
                ]
                for index, r in enumerate(runs)
            ],
        },
        "notes": notes,
        "results": results,
        "serialization": costs,
        "ok": errors == 0 and rest["requests"] > 0 and grpc["requests"] > 0,
    }
