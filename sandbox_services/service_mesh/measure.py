"""Figures about processes and samples: CPU time, memory, percentiles."""

from __future__ import annotations

import math
import time
from pathlib import Path


def cpu_ns(pid: int) -> int | None:
    """Return the CPU time a process has used, nanoseconds (its process CPU-time clock)."""
    try:
        # clock_getcpuclockid(pid): CPUCLOCK_SCHED of the whole process, exact to the ns
        # (/proc/<pid>/stat counts 10 ms ticks: too coarse for a sidecar's microseconds).
        return time.clock_gettime_ns(((~pid) << 3) | 2)
    except OSError:
        return None


def memory_kb(pid: int) -> dict[str, int]:
    """Return a process's RSS and PSS in kB (PSS shares pages fairly among the processes using them)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key.lower()] = int(rest.split()[0])
    except OSError:
        pass
    return values


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(values: list[float]) -> dict[str, float | None]:
    """Return count, p50, p90, p99 and max of a sample."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else None,
    }
