"""Benchmark the REST vs gRPC lab's load experiment against a bare client on the same servers.

One real sandbox (a sandbox host, a supervisor, the lab's three services,
traced as in the lab) serves the whole run. In rounds, the lab's ``load``
experiment runs through the platform's command path (``command("run")``), and
a bare client - plain aiohttp and plain grpc.aio in a fresh interpreter with
no OpenTelemetry - drives the same two server processes with the same
concurrency, duration and payload. Both decode each response into the same
domain objects, so the difference is what the lab adds: tracing (sampled),
its client wrapper and its process plumbing. Medians of the rounds are printed
as ``name: value unit`` lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")

from sandbox_services.rest_vs_grpc.services.catalog.client import UNSAMPLED_TRACEPARENT  # noqa: E402

os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "3")

if TYPE_CHECKING:
    from sandbox_services.runtime.launcher import LaunchedHost

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONCURRENCY = 16
DURATION_S = 2
ITEMS = 10
SAMPLE_RATIO = 0.01
WARMUP_CALLS = 50
# The bare client sends a W3C trace context with the "sampled" flag off, as the
# lab's generator does for the calls it does not sample: the servers (traced,
# as in the lab) then record nothing for it, instead of tracing every call.
UNSAMPLED = {"traceparent": UNSAMPLED_TRACEPARENT}


# --- the bare client: no tracing, nothing of the lab but the codec ----------


async def _bare_rest(address: str) -> tuple[list[float], int, float, float]:
    import aiohttp

    from sandbox_services.rest_vs_grpc.services.catalog import codec_json

    url = f"http://{address}/v1/products?count={ITEMS}&offset=0"
    async with aiohttp.ClientSession(headers=UNSAMPLED) as session:

        async def call() -> None:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(response.status)
            codec_json.page_from_json(json.loads(body))

        await asyncio.gather(*[call() for _ in range(WARMUP_CALLS)])
        return await _closed_loop(call)


async def _bare_grpc(address: str) -> tuple[list[float], int, float, float]:
    import grpc

    from sandbox_services.rest_vs_grpc.services.catalog import codec_proto
    from sandbox_services.protos_gen.labapi.catalog.v1 import catalog_pb2, catalog_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = catalog_pb2_grpc.CatalogStub(channel)
        request = catalog_pb2.ListProductsRequest(count=ITEMS, offset=0)
        metadata = tuple(UNSAMPLED.items())

        async def call() -> None:
            reply = await stub.ListProducts(request, timeout=10, metadata=metadata)
            codec_proto.page_from_proto(reply)

        await asyncio.gather(*[call() for _ in range(WARMUP_CALLS)])
        return await _closed_loop(call)


async def _closed_loop(call: Any) -> tuple[list[float], int, float, float]:
    """Keep CONCURRENCY calls in flight for DURATION_S, exactly as the lab's generator does."""
    clock = time.perf_counter
    latencies: list[float] = []
    errors = 0
    stop_at = clock() + DURATION_S

    async def worker() -> None:
        nonlocal errors
        while (started := clock()) < stop_at:
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(clock() - started)

    began, cpu_began = clock(), time.process_time()
    await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])
    return latencies, errors, clock() - began, time.process_time() - cpu_began


def _cpu_per_call(summary: dict, cpu_s: float) -> dict:
    calls = summary["requests"] + summary["errors"]
    summary["client_cpu_us"] = round(cpu_s / calls * 1e6, 1) if calls else 0.0
    return summary


def bare_main(transport: str, address: str) -> None:
    """Drive one transport bare and print its summary as JSON (the child's whole job)."""
    from sandbox_services.rest_vs_grpc.latency import summarise

    drive = _bare_rest if transport == "rest" else _bare_grpc
    latencies, errors, elapsed, cpu_s = asyncio.run(drive(address))
    print(json.dumps(_cpu_per_call(summarise(latencies, errors, elapsed), cpu_s)))


def bare_load(transport: str, address: str) -> dict:
    """Run the bare client for one transport in a fresh interpreter; return its summary."""
    # A new interpreter, not a fork: OpenTelemetry is never imported, let alone set up.
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "bare", transport, address],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=DURATION_S + 60,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- the lab: a real sandbox on a real host ----------------------------------


class LabSandbox:
    """A sandbox host for a pretend worker (runtime/launcher.py), and one rest-vs-grpc sandbox."""

    def __init__(self) -> None:
        from sandbox_services.runtime import client

        self.client = client
        self.host: LaunchedHost | None = None
        self.sandbox_id = ""
        self.ports: dict[str, int] = {}

    def start(self) -> None:
        from sandbox_services.runtime.launcher import launch_host

        self.host = launch_host(
            f"bench-{uuid.uuid4().hex[:8]}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Same session as this benchmark and its bare clients, on purpose:
            # Linux's autogroup scheduler shares CPU between sessions, so a
            # host in a session of its own would leave the lab's generator and
            # servers one share between them against the bare client's extra one.
            own_session=False,
        )
        self.sandbox_id, reply = self.host.spawn(
            "rest-vs-grpc", idle_timeout_s=600, lifetime_s=900, timeout_s=90
        )
        self.ports = {name: state["port"] for name, state in reply["services"].items()}

    def run_load(self) -> dict:
        params = {
            "concurrency": CONCURRENCY,
            "duration_s": DURATION_S,
            "items": ITEMS,
            "sample_ratio": SAMPLE_RATIO,
        }
        reply = self.client.command(
            self.sandbox_id,
            "run",
            timeout_s=120,
            run_id=uuid.uuid4().hex,
            experiment="load",
            params=params,
        )
        if reply.get("state") != "done":
            raise RuntimeError(f"the lab's load run failed: {reply.get('error')}")
        return reply["result"]["results"]

    def stop(self) -> None:
        """Stop the sandbox and end the host with everything it forked."""
        if self.host is not None:
            self.host.stop()


def _median(runs: list[dict], transport: str, figure: str) -> float:
    return statistics.median(run[transport][figure] for run in runs)


def main() -> None:
    """Run the rounds and print the figures."""
    lab = LabSandbox()
    lab.start()
    lab_runs: list[dict] = []
    bare_runs: list[dict] = []
    try:
        addresses = {
            "rest": f"127.0.0.1:{lab.ports['catalog-rest']}",
            "grpc": f"127.0.0.1:{lab.ports['catalog-grpc']}",
        }
        for round_number in range(1, ROUNDS + 1):
            # Alternate the order so a drift in the machine's load hits both sides.
            order = ("lab", "bare") if round_number % 2 else ("bare", "lab")
            for side in order:
                if side == "lab":
                    lab_runs.append(lab.run_load())
                else:
                    bare_runs.append({t: bare_load(t, a) for t, a in addresses.items()})
            print(
                f"# round {round_number}: lab REST {lab_runs[-1]['rest']['rps']:.0f}/s "
                f"gRPC {lab_runs[-1]['grpc']['rps']:.0f}/s; bare REST "
                f"{bare_runs[-1]['rest']['rps']:.0f}/s gRPC {bare_runs[-1]['grpc']['rps']:.0f}/s",
                flush=True,
            )
    finally:
        lab.stop()

    print(
        f"# {ROUNDS} rounds, medians; concurrency {CONCURRENCY}, {DURATION_S} s per transport, "
        f"{ITEMS} products per response, lab traces sampled at {SAMPLE_RATIO:.0%}"
    )
    for transport, label in (("rest", "REST"), ("grpc", "gRPC")):
        lab_rps = _median(lab_runs, transport, "rps")
        bare_rps = _median(bare_runs, transport, "rps")
        # The ratio within each round, then its median: a drift in the machine's
        # load between rounds then cancels out instead of landing on one side.
        paired = statistics.median(
            lab_run[transport]["rps"] / bare_run[transport]["rps"]
            for lab_run, bare_run in zip(lab_runs, bare_runs, strict=True)
        )
        print(f"lab {label} throughput: {lab_rps:.1f} req/s")
        print(f"bare {label} throughput: {bare_rps:.1f} req/s")
        print(f"lab/bare {label} throughput: {100 * lab_rps / bare_rps:.1f} %")
        print(f"lab/bare {label} throughput, paired by round: {100 * paired:.1f} %")
        print(f"lab {label} p99: {_median(lab_runs, transport, 'p99_ms'):.2f} ms")
        print(f"bare {label} p99: {_median(bare_runs, transport, 'p99_ms'):.2f} ms")
        lab_cpu = _median(lab_runs, transport, "client_cpu_us")
        bare_cpu = _median(bare_runs, transport, "client_cpu_us")
        print(f"lab {label} client CPU per call: {lab_cpu:.0f} us")
        print(f"bare {label} client CPU per call: {bare_cpu:.0f} us")
        errors = sum(run[transport]["errors"] for run in lab_runs + bare_runs)
        print(f"{label} errors: {errors} calls")


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        bare_main(sys.argv[2], sys.argv[3])
    else:
        main()
