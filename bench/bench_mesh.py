#!/usr/bin/env python3
"""Benchmark the service mesh on the real runtime: what two HAProxy sidecar hops with mTLS cost.

One sandbox of the service-mesh lesson on a real sandbox host
(runtime/launcher.py); its control plane starts five HAProxy sidecars. The
figures come from the lesson's own ``overhead`` experiment, run as the
platform runs it: the same GET to the backend, direct (mesh off) and through
the client's and the backend's sidecars with mTLS (mesh on), sent in turn
request by request at a fixed total rate, so both modes share the machine's
state. Twice: with a sampled share of requests traced (as load experiments
run), and with every request traced (spans on throughout).

Also: sidecar CPU per 1,000 requests (each HAProxy process's CPU clock),
memory per sidecar (PSS of master and worker), the control plane's CPU per
1,000 requests (log lines to spans), and the p50 time to start a sandbox of
this lesson (five sidecars included).

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
from sandbox_services.service_mesh.knobs import (  # noqa: E402
    ISTIO_AMBIENT_L4_P90_MS,
    ISTIO_SIDECAR_P90_MS,
)

LESSON = "service-mesh"
RATE = 400  # requests per second, both modes together
SECONDS_PER_MODE = 8.0
STARTS = 5  # sandboxes started (and stopped) one after another for the start time
RUN_TIMEOUT_S = 120.0


def run_overhead(sandbox_id: str, traced_percent: float) -> dict:
    reply = client.command(
        sandbox_id,
        "run",
        run_id=f"bench{int(time.time() * 1000) % 10**9}",
        experiment="overhead",
        params={"rate": RATE, "duration_s": SECONDS_PER_MODE, "traced_percent": traced_percent},
        timeout_s=RUN_TIMEOUT_S,
    )
    if reply.get("state") != "done":
        raise SystemExit(f"overhead run failed: {reply}")
    return reply["result"]["figures"]


def run_overhead_under_load(label: str, sandbox_id: str, traced_percent: float) -> dict:
    """Run the experiment and print the machine's load average around it.

    On a shared 2-core machine the added latency follows the load more than
    the code: a figure without the load beside it cannot be compared.
    """
    before = os.getloadavg()[0]
    figures = run_overhead(sandbox_id, traced_percent)
    print(
        f"mesh {label} load average (1 min) before, after: {before:.2f}, {os.getloadavg()[0]:.2f}"
    )
    return figures


def print_overhead(label: str, figures: dict) -> None:
    off, on = figures["latency_us"]["mesh off"], figures["latency_us"]["mesh on"]
    for quantile in ("p50", "p90", "p99"):
        print(f"mesh {label} mesh off {quantile}: {off[quantile] / 1000:.3f} ms")
        print(f"mesh {label} mesh on {quantile}: {on[quantile] / 1000:.3f} ms")
        print(f"mesh {label} added {quantile}: {(on[quantile] - off[quantile]) / 1000:.3f} ms")
        print(f"mesh {label} on/off ratio {quantile}: {on[quantile] / off[quantile]:.2f} x")
    print(f"mesh {label} requests per mode: {figures['requests']['mesh on']} requests")
    print(f"mesh {label} errors: {sum(figures['errors'].values())} requests")
    for name, value in figures["cpu_ms_per_1000"].items():
        print(f"mesh {label} {name} sidecar CPU per 1000 requests: {value:.1f} ms")
    print(
        f"mesh {label} control plane CPU per 1000 requests: "
        f"{figures['control_plane_cpu_ms_per_1000']:.1f} ms"
    )


def main() -> None:
    with running_host(f"bench-mesh-{os.getpid()}") as host:
        starts = []
        for _ in range(STARTS):
            began = time.monotonic()
            sandbox_id, _ = host.spawn(LESSON, timeout_s=60)
            starts.append((time.monotonic() - began) * 1000)
            client.command(sandbox_id, "stop", timeout_s=30)
        print(f"mesh sandbox start p50: {statistics.median(starts):.0f} ms")
        print(f"mesh sandbox start max: {max(starts):.0f} ms")
        sandbox_id, _ = host.spawn(LESSON, timeout_s=60)
        try:
            sampled = run_overhead_under_load("traced 5%", sandbox_id, 5.0)
            print_overhead("traced 5%", sampled)
            every = run_overhead_under_load("traced 100%", sandbox_id, 100.0)
            print_overhead("traced 100%", every)
            for name, memory in every["memory_kb"].items():
                print(f"mesh memory per sidecar {name} PSS: {memory['pss'] / 1024:.1f} MB")
                print(f"mesh memory per sidecar {name} RSS: {memory['rss'] / 1024:.1f} MB")
            print(f"mesh sidecars per sandbox: {every['sidecars']} sidecars")
            print(f"mesh generated config lines: {every['config_lines']} lines")
            print(
                f"mesh Istio 1.16.2 sidecar added p90 (published, theirs): {ISTIO_SIDECAR_P90_MS} ms"
            )
            print(
                f"mesh Istio 1.22 ambient L4 added p90 (published, theirs): {ISTIO_AMBIENT_L4_P90_MS} ms"
            )
        finally:
            client.command(sandbox_id, "stop", timeout_s=30)


if __name__ == "__main__":
    main()
