"""Drive one catalog server with closed-loop load and summarise the latencies.

``generate_load`` runs in its own forked process (``ctx.fork``), so the load
generator never shares a GIL with the server it measures or with the other
transport's run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from sandbox_services.rest_vs_grpc.services.catalog.client import make_client, make_untraced_client
from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    CallFailed,
    InvalidArgument,
    NotFound,
)
from sandbox_services.rest_vs_grpc.latency import summarise


class SampledClient:
    """Send each call through a traced client when the tracer samples it, else untraced.

    OpenTelemetry's client instrumentation does most of its work (URL
    redaction, attributes, propagation) before it learns that a call is not
    sampled, so at a 1% sample it would still cost the generator a large
    share of its CPU. Here the sampling decision comes first: a sampled call
    gets a "load call" span and the full instrumentation; the others skip it
    and carry an unsampled trace context, so the server skips tracing too.
    """

    def __init__(self, transport: str, address: str) -> None:
        self._tracer = trace.get_tracer(__name__)
        self.traced = make_client(transport, address)
        self.untraced = make_untraced_client(transport, address)

    async def list_products(self, items: int) -> None:
        with self._tracer.start_as_current_span("load call") as span:
            if span.is_recording():
                await self.traced.list_products(items)
                return
        with suppress_instrumentation():
            await self.untraced.list_products(items)

    async def close(self) -> None:
        await self.traced.close()
        await self.untraced.close()


async def _drive(
    transport: str, address: str, concurrency: int, duration_s: float, items: int, warmup_calls: int
) -> dict[str, Any]:
    client = SampledClient(transport, address)
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

        began, cpu_began = clock(), time.process_time()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed, cpu = clock() - began, time.process_time() - cpu_began
    finally:
        await client.close()
    summary = summarise(latencies, errors, elapsed)
    # The generator's own CPU per call: unlike throughput, it hardly depends
    # on what else the machine is running.
    calls = len(latencies) + errors
    summary["client_cpu_us"] = round(cpu / calls * 1e6, 1) if calls else 0.0
    return summary


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
