"""Measure the sandbox runtime: start time, memory per sandbox, span delivery latency.

Run: ``.venv/bin/python bench/bench_runtime.py`` with Redis and RabbitMQ up.
It starts its own sandbox host on Redis database 1 (or $REDIS_URL) and ends it.
Prints plain lines "name: value unit".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "5")
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-bench"))

from channels_redis.core import RedisChannelLayer  # noqa: E402

from sandbox_services.runtime import client, keys  # noqa: E402
from sandbox_services.runtime.launcher import LaunchedHost, running_host  # noqa: E402

STARTS = 20
STREAMING_SANDBOXES = 10
CALLS_PER_SANDBOX = 50
CALL_INTERVAL_MS = 100  # 10 calls a second per sandbox: 200 spans a second in all


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Host:
    """A sandbox host (runtime/launcher.py) and the selftest sandboxes the benchmarks spawn."""

    def __init__(self, launched: LaunchedHost) -> None:
        self.launched = launched

    def spawn(self) -> str:
        return self.spawn_with_reply()[0]

    def spawn_with_reply(self) -> tuple[str, dict]:
        return self.launched.spawn("selftest", idle_timeout_s=600, lifetime_s=600, timeout_s=30)


def bench_start(host: Host) -> None:
    """Time spawn request to ready reply, STARTS times, one sandbox at a time."""
    host.spawn()  # the first fork of a fresh host touches cold pages; not a learner's case
    timings = []
    ready_ms: dict[str, list[float]] = {}
    for _ in range(STARTS):
        started = time.perf_counter()
        sandbox_id, reply = host.spawn_with_reply()
        timings.append(time.perf_counter() - started)
        for name, entry in reply["services"].items():
            ready_ms.setdefault(name, []).append(entry["instances"][0]["ready_ms"])
        client.command(sandbox_id, "stop", timeout_s=20)
    print(f"sandbox_start_p50: {percentile(timings, 0.50):.3f} s")
    print(f"sandbox_start_p95: {percentile(timings, 0.95):.3f} s")
    for name, values in ready_ms.items():  # fork to healthy, as each probe saw it
        print(f"service_ready_{name}_p50: {percentile(values, 0.50):.0f} ms")


def _smaps_rollup(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])  # kB
    return values


def bench_memory(host: Host) -> None:
    """Sum private and PSS memory of one running sandbox's processes."""
    sandbox_id = host.spawn()
    client.command(
        sandbox_id, "run", run_id="warm", experiment="echo", params={"calls": 5}, timeout_s=30
    )
    current = client.status(sandbox_id)
    roles = {"supervisor": current["pid"], "metrics": current.get("metrics_pid")}
    roles.update(
        (name, entry["pid"]) for name, entry in current["services"].items() if entry["pid"]
    )
    private_kb = pss_kb = 0
    for role, pid in roles.items():
        if pid is None:
            continue
        rollup = _smaps_rollup(pid)
        private = rollup["Private_Clean"] + rollup["Private_Dirty"]
        print(f"private_memory_{role}: {private / 1024:.1f} MB")
        private_kb += private
        pss_kb += rollup["Pss"]
    print(f"sandbox_processes: {sum(pid is not None for pid in roles.values())} count")
    print(f"sandbox_private_memory: {private_kb / 1024:.1f} MB")
    print(f"sandbox_pss_memory: {pss_kb / 1024:.1f} MB")
    client.command(sandbox_id, "stop", timeout_s=20)


async def _stream(sandbox_ids: list[str]) -> list[float]:
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
    channel = await layer.new_channel()
    for sandbox_id in sandbox_ids:
        await layer.group_add(keys.channel_group(sandbox_id), channel)
    runs = [
        asyncio.to_thread(
            client.command,
            sandbox_id,
            "run",
            run_id=uuid.uuid4().hex,
            experiment="echo",
            timeout_s=60,
            params={"calls": CALLS_PER_SANDBOX, "interval_ms": CALL_INTERVAL_MS},
        )
        for sandbox_id in sandbox_ids
    ]
    expected = 2 * CALLS_PER_SANDBOX * len(sandbox_ids)
    latencies_ms: list[float] = []

    async def listen() -> None:
        while len(latencies_ms) < expected:
            message = await layer.receive(channel)
            if message["type"] == "sandbox.spans":
                now = time.time_ns()
                latencies_ms.extend((now - span["end_ns"]) / 1e6 for span in message["items"])

    listener = asyncio.ensure_future(listen())
    await asyncio.gather(*runs)
    try:
        await asyncio.wait_for(listener, 10)
    except TimeoutError:
        pass
    return latencies_ms


def bench_latency(host: Host) -> None:
    """Span end to channel-layer receipt, with STREAMING_SANDBOXES sandboxes calling at once."""
    sandbox_ids = [host.spawn() for _ in range(STREAMING_SANDBOXES)]
    latencies = asyncio.run(_stream(sandbox_ids))
    print(f"span_latency_sandboxes: {STREAMING_SANDBOXES} count")
    print(f"span_latency_spans: {len(latencies)} count")
    print(f"span_latency_p50: {percentile(latencies, 0.50):.1f} ms")
    print(f"span_latency_p99: {percentile(latencies, 0.99):.1f} ms")
    for sandbox_id in sandbox_ids:
        client.command(sandbox_id, "stop", timeout_s=20)


BENCHES = {"start": bench_start, "memory": bench_memory, "latency": bench_latency}


def main(argv: list[str] | None = None) -> None:
    """Run the measurements named on the command line (all three by default) on a fresh host."""
    names = (sys.argv[1:] if argv is None else argv) or list(BENCHES)
    with running_host(f"bench-{uuid.uuid4().hex[:8]}", stderr=subprocess.DEVNULL) as launched:
        host = Host(launched)
        for name in names:
            BENCHES[name](host)
            # Latency on a shared machine means little without how busy it was.
            print(f"load_average_1m_after_{name}: {os.getloadavg()[0]:.1f} runnable")
    print(f"cpu_count: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
