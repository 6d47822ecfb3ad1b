"""Figures about processes: CPU time and memory (percentiles: runtime/sample_stats.py)."""

from __future__ import annotations

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
