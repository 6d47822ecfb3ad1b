"""Fan out to several calls at once, wait until a deadline, answer with what came back.

The BFF's one idea, small enough to read: start every call, wait for all of
them or for the deadline, cancel the laggards, and say which parts are
missing and why. A client gets an answer in deadline time, not in the
slowest back end's time, and knows what it lacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping


async def gather_by_deadline(calls: Mapping[str, Awaitable], deadline_s: float) -> dict:
    """Run ``calls`` in parallel; return parts, missing ones with reasons, and each part's time."""
    started = time.perf_counter()
    tasks = {name: asyncio.ensure_future(call) for name, call in calls.items()}
    finished_at: dict[str, float] = {}
    for name, task in tasks.items():
        task.add_done_callback(
            lambda _, name=name: finished_at.setdefault(name, time.perf_counter())
        )
    await asyncio.wait(tasks.values(), timeout=deadline_s)
    parts, missing = {}, {}
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            missing[name] = f"no answer within the {deadline_s * 1000:.0f} ms deadline"
        elif task.exception() is not None:
            missing[name] = f"failed: {type(task.exception()).__name__}: {task.exception()}"[:200]
        else:
            parts[name] = task.result()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    return {
        "parts": parts,
        "missing": missing,
        "partial": bool(missing),
        "part_ms": {
            name: round((at - started) * 1000, 1)
            for name, at in finished_at.items()
            if name in parts
        },
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
