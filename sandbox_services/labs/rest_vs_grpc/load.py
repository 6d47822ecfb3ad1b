"""Drive one catalog server with closed-loop load and summarise the latencies.

``generate_load`` runs in its own forked process (``ctx.fork``), so the load
generator never shares a GIL with the server it measures or with the other
transport's run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sandbox_services.catalog.client import make_client
from sandbox_services.catalog.interface import CallFailed, InvalidArgument, NotFound


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summarise(latencies_s: list[float], errors: int, elapsed_s: float) -> dict[str, Any]:
    """Return throughput and latency percentiles (ms) of one load run."""
    ordered = sorted(latencies_s)
    return {
        "requests": len(ordered),
        "errors": errors,
        "elapsed_s": round(elapsed_s, 3),
        "rps": round(len(ordered) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 3),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3) if ordered else 0.0,
    }


async def _drive(
    transport: str, address: str, concurrency: int, duration_s: float, items: int, warmup_calls: int
) -> dict[str, Any]:
    client = make_client(transport, address)
    latencies: list[float] = []
    errors = 0
    try:
        # Warm up with the same concurrency: connections open, code paths hot.
        warmup = [client.list_products(items) for _ in range(max(warmup_calls, concurrency))]
        await asyncio.gather(*warmup, return_exceptions=True)
        clock = time.perf_counter
        stop_at = clock() + duration_s

        async def worker() -> None:
            nonlocal errors
            # Closed loop: each worker sends its next call when the last returns,
            # so concurrency is the number of calls in flight.
            while (started := clock()) < stop_at:
                try:
                    await client.list_products(items)
                except (CallFailed, InvalidArgument, NotFound):
                    errors += 1
                    continue
                latencies.append(clock() - started)

        began = clock()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = clock() - began
    finally:
        await client.close()
    return summarise(latencies, errors, elapsed)


def generate_load(
    transport: str,
    address: str,
    concurrency: int,
    duration_s: float,
    items: int,
    warmup_calls: int = 50,
) -> dict[str, Any]:
    """Call ListProducts from ``concurrency`` tasks for ``duration_s``; return rps and percentiles."""
    return asyncio.run(_drive(transport, address, concurrency, duration_s, items, warmup_calls))
