"""A class arriving at once: 60 learners on one machine, through the real lab.

Starts a real Celery worker (with its sandbox host) and daphne on a scratch
SQLite file and Redis database 2, then, for 60 learners spread over the four
lessons with live services (a class at different points of the course):
- measures the lab's idle CPU with no sandbox (the lab's own processes, from
  /proc over a fixed window, as a share of the whole machine);
- starts the 60 sandboxes 6 at a time through the JSON API, each timed from the
  POST to "running" arriving on its WebSocket (start p50/p95);
- lets the 60 sandboxes sit idle with no browser watching (past the time a
  sandbox's gauges linger after its last page closed) and measures the lab's
  CPU again over the same window;
- runs one interactive experiment in every sandbox at once, each learner
  watching on its WebSocket (opened PAGE_OPEN_S before the Run, as a page
  is), and measures span end (end_ns, stamped by the service) to receipt on
  the WebSocket (p50/p99);
- stops the class's sandboxes, has its instructor warm one per learner (a
  warm pool per lesson, timed until all are running), and starts the class
  again 6 at a time: each start takes a warm sandbox (start p50/p95, warm);
- lets one learner flood its sandbox with runs and starts while a second
  learner starts a sandbox, timed as above (capped at FLOOD_CAP_S);
- stops everything and counts the processes left behind.

The machine is shared: the load average is printed before and after, and the
CPU figures count only the lab's own processes, so other work on the machine
does not inflate them (it still slows them).
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

from sandbox_services.runtime.supervisor import (  # noqa: E402
    HEARTBEAT_INTERVAL_S,
    METRICS_LINGER_S,
)

LEARNERS = int(os.environ.get("BENCH_CLASS_LEARNERS", "60"))
AT_ONCE = 6
IDLE_SETTLE_S = 5.0
# After the starts, idle means nobody has watched for longer than the gauges linger.
UNWATCHED_SETTLE_S = METRICS_LINGER_S + HEARTBEAT_INTERVAL_S + 2.0
IDLE_WINDOW_S = 10.0
FLOOD_RUNS = 200
FLOOD_STARTS = 20
FLOOD_CAP_S = 25.0
# Seconds a learner's page is open (watching) before the Run; 0 measures Run on arrival.
PAGE_OPEN_S = float(os.environ.get("BENCH_CLASS_PAGE_OPEN_S", "3"))
# The whole run phase ends after this, whatever is still running (the bench stays bounded).
RUNS_CAP_S = 75.0
# Warming the class's sandboxes ends after this, however many are warm by then.
WARM_CAP_S = 180.0
# One interactive experiment per lesson, as a learner's first click would run it.
INTERACTIVE = {
    "rest-vs-grpc": {"experiment": "one-call", "params": {}},
    "async-messaging": {"experiment": "sync-vs-async", "params": {"orders": 3, "slow_ms": 50}},
    "event-sourcing": {"experiment": "optimistic-concurrency", "params": {}},
    "saga": {"experiment": "happy-path", "params": {}},
}
LESSONS = list(INTERACTIVE)
CPUS = os.cpu_count() or 1


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
        LAB_SANDBOXES_PER_SITE=str(LEARNERS + 20),
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

    return [labuser_upsert(username=f"class-{index}", role="learner")[1] for index in range(count)]


def make_class(learners: int) -> tuple[str, int]:
    """Put the first ``learners`` learners in a cohort; return its instructor's token and its id."""
    from django.contrib.auth import get_user_model

    from lab.classroom.services import cohort_create
    from lab.users.services import labuser_upsert

    teacher, token = labuser_upsert(username="class-teacher", role="instructor")
    cohort = cohort_create(instructor=teacher, name="bench class")
    users = get_user_model().objects.filter(username__in=[f"class-{i}" for i in range(learners)])
    cohort.learners.add(*users)
    return token, cohort.id


# -- /proc ----------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(roots: list[int]) -> set[int]:
    """Return ``roots`` and every live process below them (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = set(), list(roots)
    while frontier:
        pid = frontier.pop()
        if pid not in found:
            found.add(pid)
            frontier.extend(children.get(pid, []))
    return found


def cpu_ns(pids: set[int]) -> dict[tuple[int, int], int]:
    """Return each live thread's CPU time in ns, by (pid, tid), from its schedstat.

    schedstat counts what each thread really ran, in ns (per-thread utime and stime
    undercount threads that wake briefly; see docs/architecture.md, traps).
    """
    runtimes = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                runtimes[(pid, int(tid))] = int(
                    Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]
                )
            except (OSError, ValueError, IndexError):
                pass
    return runtimes


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def lab_cpu_percent(roots: list[int], window_s: float) -> tuple[float, float, int]:
    """Return (lab's CPU as % of the machine, machine busy %, lab processes) over the window."""
    before_pids = descendants(roots)
    before = cpu_ns(before_pids)
    busy_before, total_before = machine_busy()
    time.sleep(window_s)
    after_pids = descendants(roots)
    after = cpu_ns(after_pids)
    busy_after, total_after = machine_busy()
    used = sum(ns - before.get(thread, 0) for thread, ns in after.items())
    lab = 100.0 * used / 1e9 / window_s / CPUS
    machine = 100.0 * (busy_after - busy_before) / max(1, total_after - total_before)
    return lab, machine, len(after_pids)


# -- the class ------------------------------------------------------------------


async def wait_for_state(ws, wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if message.get("type") == "sandbox" and message["sandbox"].get("state") == wanted:
            return
        if message.get("type") == "sandbox" and message["sandbox"].get("state") == "failed":
            raise RuntimeError(f"sandbox failed: {message['sandbox'].get('reason')}")
    raise TimeoutError(f"no {wanted} state")


async def start_one(http, lesson: str, timeout: float = 60.0) -> tuple[str, float]:
    """Start a sandbox; return its id and seconds from POST to "running" on its WebSocket."""
    began = time.perf_counter()
    async with http.post("/api/sandboxes/", json={"lesson": lesson}) as response:
        body = await response.json()
        if response.status != 201:
            raise RuntimeError(f"start refused: {response.status} {body}")
    async with http.ws_connect(f"/ws/sandboxes/{body['id']}/") as ws:
        await wait_for_state(ws, "running", timeout)
    return body["id"], time.perf_counter() - began


async def available_lessons(base: str, token: str) -> None:
    """Keep the lessons the site serves now (a lesson being edited may fail its checks)."""
    import aiohttp

    async with aiohttp.ClientSession(base, headers={"Authorization": f"Token {token}"}) as http:
        async with http.get("/api/lessons/") as response:
            served = {lesson["slug"] for lesson in await response.json()}
    LESSONS[:] = [lesson for lesson in INTERACTIVE if lesson in served]
    print(f"lessons of the class: {', '.join(LESSONS)}")


async def class_starts(base: str, tokens: list[str]) -> tuple[list[str], list[float]]:
    import aiohttp

    gate = asyncio.Semaphore(AT_ONCE)

    failures: list[str] = []

    async def learner(index: int, token: str) -> tuple[str, float]:
        async with gate:
            headers = {"Authorization": f"Token {token}"}
            async with aiohttp.ClientSession(base, headers=headers) as http:
                for _ in range(2):
                    try:
                        return await start_one(http, LESSONS[index % len(LESSONS)])
                    except RuntimeError as error:  # counted and said; the learner tries again
                        failures.append(str(error))
                return await start_one(http, LESSONS[index % len(LESSONS)])

    results = await asyncio.gather(*(learner(i, token) for i, token in enumerate(tokens)))
    print(f"starts that failed and were tried again: {len(failures)} starts")
    for failure in failures[:3]:
        print(f"  ({failure})")
    return [sandbox for sandbox, _ in results], [seconds for _, seconds in results]


async def stop_class(base: str, tokens: list[str], sandboxes: list[str]) -> float:
    """Stop every learner's sandbox through the API; return seconds until all have ended."""
    import aiohttp

    from asgiref.sync import sync_to_async

    from lab.sandboxes.models import ACTIVE_STATES, Sandbox

    began = time.perf_counter()
    for token, sandbox in zip(tokens, sandboxes, strict=True):
        async with aiohttp.ClientSession(base, headers={"Authorization": f"Token {token}"}) as http:
            async with http.delete(f"/api/sandboxes/{sandbox}/") as response:
                await response.read()
    live = sync_to_async(
        lambda: Sandbox.objects.filter(id__in=sandboxes, state__in=ACTIVE_STATES).count()
    )
    deadline = time.monotonic() + 120
    while await live() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return time.perf_counter() - began


async def warm_class(base: str, teacher: str, cohort: int) -> tuple[float, dict]:
    """Warm the class's sandboxes, each lesson its share; return seconds until all are warm."""
    import aiohttp

    sizes: dict[str, int] = {}
    for index in range(LEARNERS):
        lesson = LESSONS[index % len(LESSONS)]
        sizes[lesson] = sizes.get(lesson, 0) + 1
    began = time.perf_counter()
    async with aiohttp.ClientSession(base, headers={"Authorization": f"Token {teacher}"}) as http:
        for lesson, size in sizes.items():
            body = {"cohort": cohort, "lesson": lesson, "size": size, "minutes": 30}
            async with http.post("/api/warm-pools/", json=body) as response:
                if response.status != 201:
                    raise RuntimeError(f"warm pool refused: {await response.text()}")
        deadline = time.monotonic() + WARM_CAP_S
        pools: list = []
        while time.monotonic() < deadline:
            async with http.get("/api/warm-pools/") as response:
                pools = [pool for pool in await response.json() if pool["live"]]
            if sum(pool["warm"] for pool in pools) >= LEARNERS:
                break
            await asyncio.sleep(0.5)
    counts = {key: sum(pool[key] for pool in pools) for key in ("warm", "starting", "failed")}
    return time.perf_counter() - began, counts


def print_starts(label: str, starts: list[float], seconds: float) -> None:
    print(f"class of {LEARNERS} started {AT_ONCE} at a time in {seconds:.1f} s ({label})")
    print(f"class start p50 ({label}): {statistics.median(starts):.3f} s")
    print(f"class start p95 ({label}): {percentile(starts, 0.95):.3f} s")
    print(f"class start max ({label}): {max(starts):.3f} s")


def span_latencies(message: dict, run_id: str, received_ns: int) -> list[float]:
    """Return ms from each live span's end to ``received_ns``, for the spans of ``run_id``."""
    if message.get("type") != "spans" or message.get("replay"):
        return []
    return [
        (received_ns - span["end_ns"]) / 1e6
        for span in message["items"]
        if span.get("run") == run_id
    ]


async def run_watched(
    base: str, token: str, sandbox_id: str, lesson: str, latencies: list, stage: dict
):
    """Post one run and follow it to its end; ``stage["at"]`` says how far it got."""
    import aiohttp

    headers = {"Authorization": f"Token {token}"}
    async with aiohttp.ClientSession(base, headers=headers) as http:
        stage["at"] = "opening the WebSocket"
        async with http.ws_connect(f"/ws/sandboxes/{sandbox_id}/") as ws:
            # The learner has the page open a moment before pressing Run: the gauges
            # an open page starts (a forked metrics process) are running by then.
            await asyncio.sleep(PAGE_OPEN_S)
            stage["at"] = "posting the run"
            async with http.post(
                f"/api/sandboxes/{sandbox_id}/runs/", json=INTERACTIVE[lesson]
            ) as response:
                run = await response.json()
                if response.status != 202:
                    raise RuntimeError(f"run refused: {response.status} {run}")
            deadline = time.monotonic() + RUNS_CAP_S
            state = "queued"
            stage["at"] = f"run {run['id']} {state}"
            while time.monotonic() < deadline:
                message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
                latencies.extend(span_latencies(message, run["id"], time.time_ns()))
                if message.get("type") == "run" and message["run"].get("id") == run["id"]:
                    state = message["run"].get("state")
                    stage["at"] = f"run {run['id']} {state}"
                    if state in ("done", "failed"):
                        return (
                            f"{state}: {message['run'].get('error')}"
                            if state == "failed"
                            else state
                        )
    return f"{lesson} still {state} after {RUNS_CAP_S:g} s"


async def class_runs(base: str, tokens: list[str], sandboxes: list[str]) -> tuple[list, list]:
    latencies: list[float] = []
    stages = [{"at": "not begun", "lesson": LESSONS[i % len(LESSONS)]} for i in range(len(tokens))]
    runs = [
        asyncio.ensure_future(
            run_watched(base, token, sandbox, stages[i]["lesson"], latencies, stages[i])
        )
        for i, (token, sandbox) in enumerate(zip(tokens, sandboxes, strict=True))
    ]
    # Bounded whatever the lab does: a request stuck in a swamped daphne counts as not done.
    await asyncio.wait(runs, timeout=RUNS_CAP_S + 15)
    states = []
    for run, stage in zip(runs, stages, strict=True):
        if not run.done():
            run.cancel()
            states.append(
                f"no answer within {RUNS_CAP_S + 15:g} s ({stage['lesson']}: {stage['at']})"
            )
        elif run.exception() is not None:
            states.append(repr(run.exception()))
        else:
            states.append(run.result())
    await asyncio.gather(*runs, return_exceptions=True)
    return latencies, states


async def flood(base: str, flooder: str, flooder_sandbox: str, second: str) -> dict:
    """One learner floods runs and starts; return the second learner's start time and counts."""
    import aiohttp

    statuses: dict[int, int] = {}
    run = {"experiment": "streaming", "params": {"duration_s": 10}}
    async with aiohttp.ClientSession(base, headers={"Authorization": f"Token {flooder}"}) as http:

        async def post(path: str, body: dict) -> None:
            try:
                async with http.post(path, json=body) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
            except aiohttp.ClientError:
                statuses[0] = statuses.get(0, 0) + 1

        await asyncio.gather(
            *(post(f"/api/sandboxes/{flooder_sandbox}/runs/", run) for _ in range(FLOOD_RUNS))
        )
        starts = asyncio.gather(
            *(post("/api/sandboxes/", {"lesson": "rest-vs-grpc"}) for _ in range(FLOOD_STARTS))
        )
        async with aiohttp.ClientSession(
            base, headers={"Authorization": f"Token {second}"}
        ) as other:
            try:
                _, seconds = await start_one(other, "rest-vs-grpc", timeout=FLOOD_CAP_S)
            except (TimeoutError, RuntimeError) as error:
                print(f"second learner's start: {error}")
                seconds = float("inf")
        await starts
    return {"seconds": seconds, "statuses": statuses}


def main() -> None:
    import aiohttp  # noqa: F401  (fail early if missing)

    from lab.harness import LabProcesses

    with tempfile.TemporaryDirectory(prefix="lab-bench-class-") as scratch:
        database = prepare_environment(Path(scratch))
        tokens = make_tokens(LEARNERS + 2)
        teacher, cohort = make_class(LEARNERS)
        class_tokens, flooder, second = tokens[:LEARNERS], tokens[LEARNERS], tokens[LEARNERS + 1]
        processes = LabProcesses(database, Path(scratch))
        seen: set[int] = set()
        try:
            processes.start_worker("classworker")
            processes.start_daphne()
            roots = [p.pid for p in processes.workers.values()] + [processes.daphne.pid]
            asyncio.run(available_lessons(processes.base_url, class_tokens[0]))
            print(f"machine: {CPUS} cores")
            print(f"load average before: {os.getloadavg()[0]:.2f}")
            time.sleep(IDLE_SETTLE_S)
            lab, machine, count = lab_cpu_percent(roots, IDLE_WINDOW_S)
            print(f"lab CPU with no sandbox: {lab:.1f} % of the machine")
            print(f"machine busy meanwhile (everything on it): {machine:.1f} %")

            began = time.perf_counter()
            sandboxes, starts = asyncio.run(class_starts(processes.base_url, class_tokens))
            print_starts("cold", starts, time.perf_counter() - began)

            time.sleep(UNWATCHED_SETTLE_S)
            seen |= descendants(roots)
            lab, machine, count = lab_cpu_percent(roots, IDLE_WINDOW_S)
            print(f"lab CPU with {LEARNERS} idle sandboxes: {lab:.1f} % of the machine")
            print(f"machine busy meanwhile (everything on it): {machine:.1f} %")
            print(f"lab processes with {LEARNERS} sandboxes: {count} processes")

            latencies, states = asyncio.run(class_runs(processes.base_url, class_tokens, sandboxes))
            done = sum(1 for state in states if state == "done")
            print(f"runs done of {LEARNERS}: {done} runs")
            failures = [str(state)[:160] for state in states if state != "done"]
            for failure in failures[:6]:
                print(f"  (not done: {failure})")
            if latencies:
                print(
                    f"span end to WebSocket p50 ({LEARNERS} sandboxes running): "
                    f"{statistics.median(latencies):.1f} ms"
                )
                print(
                    f"span end to WebSocket p99 ({LEARNERS} sandboxes running): "
                    f"{percentile(latencies, 0.99):.1f} ms"
                )
                print(f"spans received: {len(latencies)} spans")

            # The same class again, its instructor having warmed its sandboxes before it came.
            stopped_s = asyncio.run(stop_class(processes.base_url, class_tokens, sandboxes))
            print(f"class's {LEARNERS} sandboxes stopped in {stopped_s:.1f} s")
            warm_s, counts = asyncio.run(warm_class(processes.base_url, teacher, cohort))
            print(f"warm pool: {counts['warm']} of {LEARNERS} warm in {warm_s:.1f} s ({counts})")
            time.sleep(IDLE_SETTLE_S)
            began = time.perf_counter()
            sandboxes, starts = asyncio.run(class_starts(processes.base_url, class_tokens))
            print_starts("warm pool", starts, time.perf_counter() - began)

            # The flood: the flooder's own sandbox first, then the flood beside a fresh start.
            async def flooder_sandbox() -> str:
                import aiohttp

                headers = {"Authorization": f"Token {flooder}"}
                async with aiohttp.ClientSession(processes.base_url, headers=headers) as http:
                    sandbox, _ = await start_one(http, "rest-vs-grpc", timeout=30)
                return sandbox

            target = asyncio.run(flooder_sandbox())
            outcome = asyncio.run(flood(processes.base_url, flooder, target, second))
            print(
                f"flood: second learner's start while one floods: {outcome['seconds']:.2f} s"
                if outcome["seconds"] != float("inf")
                else f"flood: second learner's start did not reach running within {FLOOD_CAP_S:g} s"
            )
            print(f"  (flooder's answers by status: {dict(sorted(outcome['statuses'].items()))})")
            print(f"load average after: {os.getloadavg()[0]:.2f}")
            seen |= descendants(roots)
        finally:
            seen |= descendants(
                [p.pid for p in processes.workers.values()]
                + ([processes.daphne.pid] if processes.daphne else [])
            )
            processes.stop()
            deadline = time.monotonic() + 30
            left = seen
            while time.monotonic() < deadline:
                left = {pid for pid in seen if _stat_fields(pid) is not None}
                if not left:
                    break
                time.sleep(0.5)
            print(f"processes left 30 s after stop: {len(left)} processes")
            for pid in left:  # the benchmark cleans up after itself whatever the figure says
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass


if __name__ == "__main__":
    main()
