"""Every experiment of one sandbox, with its defaults: span end to WebSocket receipt.

Starts a real Celery worker (with its sandbox host) and daphne on a scratch
SQLite file and Redis database 2 (as bench_class does), then, lesson by
lesson, one learner starts a sandbox through the JSON API and runs each of the
lesson's experiments in turn with no parameters (its defaults), watching on
the sandbox's WebSocket as a page does. For every span of the run the time
from its end (end_ns, stamped by the service) to its receipt on the WebSocket
is kept; each experiment's p99 is printed, then the worst and the overall p99.

Bounded: each run gets RUN_CAP_S, the whole benchmark TOTAL_CAP_S; what was
not measured in time is said, never guessed.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_class import (  # noqa: E402
    make_tokens,
    percentile,
    prepare_environment,
    span_latencies,
    start_one,
)

RUN_CAP_S = 60.0
TOTAL_CAP_S = float(os.environ.get("BENCH_EXPERIMENTS_CAP_S", "250"))
LESSONS = os.environ.get(
    "BENCH_EXPERIMENTS_LESSONS",
    "rest-vs-grpc,async-messaging,event-sourcing,saga,service-mesh,api-gateway",
).split(",")


async def run_and_watch(http, ws, sandbox_id: str, experiment: str) -> tuple[str, list[float]]:
    """Run one experiment with its defaults; return its end state and its spans' latencies (ms)."""
    async with http.post(
        f"/api/sandboxes/{sandbox_id}/runs/", json={"experiment": experiment, "params": {}}
    ) as response:
        run = await response.json()
        if response.status != 202:
            return f"refused {response.status}: {run}", []
    latencies: list[float] = []
    deadline = time.monotonic() + RUN_CAP_S
    state = "queued"
    # After the run's end, half a second more: spans a service flushes late still count.
    while time.monotonic() < deadline:
        try:
            message = await ws.receive_json(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        latencies.extend(span_latencies(message, run["id"], time.time_ns()))
        if message.get("type") == "run" and message["run"].get("id") == run["id"]:
            if message["run"].get("state") in ("done", "failed") and state not in (
                "done",
                "failed",
            ):
                state = message["run"]["state"]
                deadline = min(deadline, time.monotonic() + 0.5)
    if state in ("done", "failed"):
        return state, latencies
    return f"not done within {RUN_CAP_S:g} s", latencies


async def lesson_experiments(base: str, token: str, lesson: str, give_up_at: float) -> list:
    import aiohttp

    from sandbox_services.runtime.plan import load_lab

    results = []
    async with aiohttp.ClientSession(base, headers={"Authorization": f"Token {token}"}) as http:
        sandbox_id, _ = await start_one(http, lesson)
        async with http.ws_connect(f"/ws/sandboxes/{sandbox_id}/", max_msg_size=0) as ws:
            for spec in load_lab(lesson).experiments:
                if time.monotonic() > give_up_at:
                    results.append((f"{lesson}/{spec.name}", "not run: time cap", []))
                    continue
                state, latencies = await run_and_watch(http, ws, sandbox_id, spec.name)
                results.append((f"{lesson}/{spec.name}", state, latencies))
        async with http.delete(f"/api/sandboxes/{sandbox_id}/"):
            pass
    return results


def main() -> None:
    from lab.harness import LabProcesses

    with tempfile.TemporaryDirectory(prefix="lab-bench-experiments-") as scratch:
        database = prepare_environment(Path(scratch))
        tokens = make_tokens(len(LESSONS))
        processes = LabProcesses(database, Path(scratch))
        try:
            processes.start_worker("experimentsworker")
            processes.start_daphne()
            print(f"machine: {os.cpu_count()} cores")
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            give_up_at = time.monotonic() + TOTAL_CAP_S
            results = []
            for token, lesson in zip(tokens, LESSONS, strict=True):
                results += asyncio.run(
                    lesson_experiments(processes.base_url, token, lesson, give_up_at)
                )
            every: list[float] = []
            measured = []
            for name, state, latencies in results:
                if not latencies:
                    print(f"  ({name}: {state}, no spans measured)")
                    continue
                every += latencies
                p99 = percentile(latencies, 0.99)
                measured.append((p99, name))
                print(f"span p99 {name}: {p99:.1f} ms ({len(latencies)} spans, {state})")
            if measured:
                worst, worst_name = max(measured)
                print(f"experiments measured: {len(measured)} experiments")
                print(f"experiments with span p99 over 100 ms: {sum(p > 100 for p, _ in measured)}")
                print(f"worst experiment span p99: {worst:.1f} ms ({worst_name})")
                print(
                    f"span end to WebSocket p50 (all experiments): {statistics.median(every):.1f} ms"
                )
                print(
                    f"span end to WebSocket p99 (all experiments): {percentile(every, 0.99):.1f} ms"
                )
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            processes.stop()


if __name__ == "__main__":
    main()
