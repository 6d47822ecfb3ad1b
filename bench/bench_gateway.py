#!/usr/bin/env python3
"""Benchmark the API gateway on the real runtime: what the front door costs, and what a BFF saves.

One sandbox of the api-gateway lesson on a real sandbox host
(runtime/launcher.py); its gateway service starts a real HAProxy at the edge.
The figures come from the lesson's own experiments, run as the platform runs
them:

- ``single-point``: the same GET direct and through the gateway, taken in
  turn request by request on kept-alive connections from a forked process,
  for a route with a JWT check and a rate-limit lookup (catalog) and one
  without (reviews): added p50/p90/p99;
- ``aggregation``: three client calls against one BFF call over the simulated
  wide-area link (40 ms a round trip), timed and counted by the link (round
  trips, bytes), then with one back end slow against the BFF's deadline.

Also the p50 time to start a sandbox of this lesson (the gateway fetches the
issuer's keys and starts HAProxy before it reports ready).

Prints lines "name: value unit".
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Database 1, as the tests and the other benchmarks: never a development lab's.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "5")
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-bench"))

from sandbox_services.runtime import client  # noqa: E402
from sandbox_services.runtime.launcher import running_host  # noqa: E402

LESSON = "api-gateway"
STARTS = 7  # sandboxes started (and stopped) one after another for the start time
OVERHEAD_REQUESTS = 2000  # per target, four targets in turn
AGGREGATION_REPEATS = 10
RUN_TIMEOUT_S = 180.0


def run(sandbox_id: str, experiment: str, params: dict) -> dict:
    reply = client.command(
        sandbox_id,
        "run",
        run_id=f"bench{int(time.time() * 1000) % 10**9}",
        experiment=experiment,
        params=params,
        timeout_s=RUN_TIMEOUT_S,
    )
    if reply.get("state") != "done":
        raise SystemExit(f"{experiment} run failed: {reply}")
    return reply["result"]


def print_overhead(result: dict) -> None:
    latency = result["figures"]["latency_us"]
    pairs = {
        "JWT + rate limit": ("catalog via gateway (JWT + rate limit)", "catalog direct"),
        "no auth": ("reviews via gateway (no auth)", "reviews direct"),
    }
    for label, (via, direct) in pairs.items():
        for quantile in ("p50", "p90", "p99"):
            print(f"gateway {label} direct {quantile}: {latency[direct][quantile] / 1000:.3f} ms")
            print(f"gateway {label} via gateway {quantile}: {latency[via][quantile] / 1000:.3f} ms")
            added = (latency[via][quantile] - latency[direct][quantile]) / 1000
            print(f"gateway {label} added {quantile}: {added:.3f} ms")
        print(f"gateway {label} requests per target: {latency[via]['count']} requests")
    print(f"gateway overhead errors: {sum(result['figures']['errors'].values())} requests")


def print_aggregation(result: dict) -> None:
    figures = result["figures"]
    rtt = figures["params"]["wan_rtt_ms"]
    print(f"aggregation link round trip: {rtt} ms")
    names = {
        "three calls, one after another": "three calls in turn",
        "three calls at once (3 connections)": "three calls at once",
        "one BFF call": "one BFF call",
    }
    for key, label in names.items():
        part = figures["parts"][key]
        print(f"aggregation {label} median: {part['median_ms']:.1f} ms")
        print(f"aggregation {label} round trips in sequence: {part['round_trips']:g} round trips")
        print(f"aggregation {label} requests: {part['requests']:g} requests")
        print(f"aggregation {label} bytes up: {part['bytes_up']} B")
        print(f"aggregation {label} bytes down: {part['bytes_down']} B")
    slow_ms = figures["params"]["slow_ms"]
    for key, part in figures["slow"].items():
        label = (
            "client waiting for the slowest" if key.startswith("three") else "BFF by its deadline"
        )
        print(f"aggregation reviews +{slow_ms} ms {label}: {part['median_ms']:.1f} ms")
    print(f"aggregation BFF deadline: {figures['params']['deadline_ms']} ms")


def main() -> None:
    with running_host(f"bench-gateway-{os.getpid()}") as host:
        starts = []
        for _ in range(STARTS):
            began = time.monotonic()
            sandbox_id, _ = host.spawn(LESSON, timeout_s=60)
            starts.append((time.monotonic() - began) * 1000)
            client.command(sandbox_id, "stop", timeout_s=30)
        print(f"gateway sandbox start p50: {statistics.median(starts):.0f} ms")
        print(f"gateway sandbox start max: {max(starts):.0f} ms")
        sandbox_id, _ = host.spawn(LESSON, timeout_s=60)
        try:
            print_overhead(run(sandbox_id, "single-point", {"requests": OVERHEAD_REQUESTS}))
            print_aggregation(run(sandbox_id, "aggregation", {"repeats": AGGREGATION_REPEATS}))
        finally:
            client.command(sandbox_id, "stop", timeout_s=30)


if __name__ == "__main__":
    main()
