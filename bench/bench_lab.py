"""The whole lab under measurement: API to running sandbox, span end to WebSocket receipt.

Starts a real Celery worker (with its sandbox host) and daphne on a scratch
SQLite file and Redis database 2, then:
- starts 20 sandboxes one after another through the JSON API and times each
  from POST to the "running" state arriving on its WebSocket;
- keeps 10 sandboxes streaming at once (each runs the one-call experiment
  several times) and measures, for every span, the time from the span's end
  (end_ns, stamped by the service) to its receipt by a WebSocket client.
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STARTS = 20
STREAMING_SANDBOXES = 10
RUNS_PER_SANDBOX = 10  # about 600 spans: enough that p99 is not the third-worst span
LESSON = "rest-vs-grpc"
# Every parameter the run means, as a script would send it.
ONE_CALL = {"experiment": "one-call", "params": {"items": 10}}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def prepare_environment(scratch: Path) -> str:
    database = str(scratch / "bench.sqlite3")
    os.environ.update(
        REDIS_URL="redis://127.0.0.1:6379/2",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/2",
        LAB_CELERY_QUEUE=f"bench-{uuid.uuid4().hex[:6]}",
        LAB_WORKDIR=str(scratch / "sandboxes"),
        LAB_SANDBOXES_PER_SITE="100",
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="lab.settings",
        DJANGO_DEBUG="0",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database


def make_tokens(count: int) -> list[str]:
    from lab.users.services import labuser_upsert

    return [labuser_upsert(username=f"bench-{index}", role="learner")[1] for index in range(count)]


async def wait_for_state(ws, wanted: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if message.get("type") == "sandbox" and message["sandbox"].get("state") == wanted:
            return
        if message.get("type") == "sandbox" and message["sandbox"].get("state") == "failed":
            raise RuntimeError(f"sandbox failed: {message['sandbox'].get('reason')}")
    raise TimeoutError(f"no {wanted} state")


async def start_times(base: str, tokens: list[str]) -> list[float]:
    """Start a sandbox as each learner in turn, one at a time; return POST-to-running seconds.

    One learner each: a learner's starts are throttled (LAB_RATE_SANDBOX_START,
    6 a minute), and 20 starts by one learner were refused from the seventh on.
    Each sandbox is stopped once running, so one runs at a time.
    """
    import aiohttp

    seconds = []
    for token in tokens[:STARTS]:
        headers = {"Authorization": f"Token {token}"}
        async with aiohttp.ClientSession(base, headers=headers) as http:
            began = time.perf_counter()
            async with http.post("/api/sandboxes/", json={"lesson": LESSON}) as response:
                sandbox = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"start refused: {response.status} {sandbox}")
            async with http.ws_connect(f"/ws/sandboxes/{sandbox['id']}/") as ws:
                await wait_for_state(ws, "running")
            seconds.append(time.perf_counter() - began)
            await http.delete(f"/api/sandboxes/{sandbox['id']}/")
    return seconds


async def stream_one(base: str, token: str, latencies: list[float], ready: asyncio.Barrier) -> None:
    import aiohttp

    headers = {"Authorization": f"Token {token}"}
    async with aiohttp.ClientSession(base, headers=headers) as http:
        async with http.post("/api/sandboxes/", json={"lesson": LESSON}) as response:
            sandbox = await response.json()
        async with http.ws_connect(f"/ws/sandboxes/{sandbox['id']}/") as ws:
            await wait_for_state(ws, "running")
            await ready.wait()
            # Each sandbox streams steadily: one run at a time, the next when it is done.
            runs_done = 0
            await http.post(f"/api/sandboxes/{sandbox['id']}/runs/", json=ONE_CALL)
            deadline = time.monotonic() + 180
            while runs_done < RUNS_PER_SANDBOX and time.monotonic() < deadline:
                message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
                received_ns = time.time_ns()
                if message.get("type") == "spans" and not message.get("replay"):
                    latencies.extend(
                        (received_ns - span["end_ns"]) / 1e6 for span in message["items"]
                    )
                elif message.get("type") == "run" and message["run"].get("state") in (
                    "done",
                    "failed",
                ):
                    runs_done += 1
                    if runs_done < RUNS_PER_SANDBOX:
                        await http.post(f"/api/sandboxes/{sandbox['id']}/runs/", json=ONE_CALL)
        await http.delete(f"/api/sandboxes/{sandbox['id']}/")


async def streaming(base: str, tokens: list[str]) -> list[float]:
    latencies: list[float] = []
    ready = asyncio.Barrier(len(tokens))
    await asyncio.gather(*(stream_one(base, token, latencies, ready) for token in tokens))
    return latencies


def main() -> None:
    from lab.harness import LabProcesses

    with tempfile.TemporaryDirectory(prefix="lab-bench-") as scratch:
        database = prepare_environment(Path(scratch))
        tokens = make_tokens(max(STARTS, STREAMING_SANDBOXES))
        processes = LabProcesses(database, Path(scratch))
        try:
            processes.start_worker("benchworker")
            processes.start_daphne()
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            starts = asyncio.run(start_times(processes.base_url, tokens))
            print(f"lab sandbox start via API p50: {statistics.median(starts):.3f} s")
            print(f"lab sandbox start via API p95: {percentile(starts, 0.95):.3f} s")
            latencies = asyncio.run(streaming(processes.base_url, tokens[:STREAMING_SANDBOXES]))
            print(
                f"span end to WebSocket receipt p50 ({STREAMING_SANDBOXES} sandboxes): {statistics.median(latencies):.1f} ms"
            )
            print(
                f"span end to WebSocket receipt p99 ({STREAMING_SANDBOXES} sandboxes): {percentile(latencies, 0.99):.1f} ms"
            )
            print(f"spans received: {len(latencies)} spans")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
        finally:
            processes.stop()


if __name__ == "__main__":
    main()
