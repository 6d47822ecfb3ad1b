"""Summarise a load run's latencies: throughput and nearest-rank percentiles."""

from __future__ import annotations

from typing import Any


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
