"""Fair share between learners, on the real worker, daphne and sandboxes.

One learner flooding runs and starts must not hold up another's start; runs
hold no worker thread while they run, go one at a time per sandbox behind a
short queue, and are rate limited per learner like starts; a stopping sandbox
whose processes are gone holds no place on the site. Runs reach their sandbox
in the order they were posted, and one whose task was lost is handed over by
the reconciler.
"""

import asyncio
import itertools
import os
import time
from datetime import timedelta

import aiohttp
import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from lab.celery import app
from lab.sandboxes.models import Run, RunTrace, Sandbox
from lab.sandboxes.tasks import UNDISPATCHED_GRACE_S, run_execute_task, sandboxes_reconcile
from sandbox_services.runtime import keys

from .helpers import LESSON, api_for, wait_run, wait_state

STREAMING = {"experiment": "streaming", "params": {"duration_s": 10}}
SHORT = {"experiment": "streaming", "params": {"duration_s": 3}}


async def _timed_start(http: aiohttp.ClientSession, timeout: float) -> float:
    """Start a sandbox; return seconds from the POST to "running" on its WebSocket."""
    began = time.monotonic()
    async with http.post("/api/sandboxes/", json={"lesson": LESSON}) as response:
        body = await response.json()
        assert response.status == 201, body
    async with http.ws_connect(f"/ws/sandboxes/{body['id']}/") as ws:
        deadline = began + timeout
        while time.monotonic() < deadline:
            message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
            if message.get("type") == "sandbox":
                state = message["sandbox"]["state"]
                if state == "running":
                    return time.monotonic() - began
                assert state not in ("failed", "stopped", "expired"), message
    return float("inf")


def _session(base: str, token: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base, headers={"Authorization": f"Token {token}"})


def test_a_learner_flooding_runs_and_starts_does_not_hold_up_another_learners_start(
    live_lab, make_user
):
    _flooder, flooder_token = make_user(role="learner")
    _second, second_token = make_user(role="learner")
    _third, third_token = make_user(role="learner")

    async def scenario() -> tuple[float, float, dict[int, int]]:
        async with _session(live_lab, flooder_token) as flooder:
            # The same start with nobody flooding: this machine's pace, for comparison.
            async with _session(live_lab, third_token) as third:
                quiet = await _timed_start(third, timeout=60)
            await _timed_start(flooder, timeout=60)
            async with flooder.get("/api/sandboxes/") as response:
                target = (await response.json())[0]["id"]
            statuses: dict[int, int] = {}

            async def post(path: str, body: dict) -> None:
                async with flooder.post(path, json=body) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1

            # 60 runs of 10 s: before, every one was accepted and each held one of the
            # worker's 8 threads for its whole length, so the next start waited.
            await asyncio.gather(
                *(post(f"/api/sandboxes/{target}/runs/", STREAMING) for _ in range(60))
            )
            starts = asyncio.gather(
                *(post("/api/sandboxes/", {"lesson": LESSON}) for _ in range(15))
            )
            async with _session(live_lab, second_token) as second:
                flooded = await _timed_start(second, timeout=60)
            await starts
        return quiet, flooded, statuses

    quiet, flooded, statuses = asyncio.run(scenario())
    assert statuses.get(429, 0) > 0, statuses
    # 2 s on a quiet machine; this one is shared, so against the same start unflooded.
    assert flooded <= max(2.0, 3 * quiet), (flooded, quiet, statuses)


def test_runs_hold_no_worker_thread_while_they_run(live_lab, make_user):
    """More runs at once than the worker has threads: all of them run, none waits for a thread."""
    concurrency = 8  # the test worker's threads (lab/harness.py)
    learners = [make_user(role="learner")[1] for _ in range(concurrency + 1)]
    apis = [api_for(token) for token in learners]
    sandboxes = [
        api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"] for api in apis
    ]
    for api, sandbox in zip(apis, sandboxes, strict=True):
        wait_state(api, sandbox, {"running"}, timeout=90)
    runs = [
        api.post(f"/api/sandboxes/{sandbox}/runs/", STREAMING, format="json").json()["id"]
        for api, sandbox in zip(apis, sandboxes, strict=True)
    ]
    # Every run is running at one moment: none sat queued behind a thread held by another.
    deadline = time.monotonic() + 8
    running = 0
    while time.monotonic() < deadline and running < len(runs):
        running = Run.objects.filter(id__in=runs, state="running").count()
        time.sleep(0.1)
    assert running == len(runs)
    for api, sandbox in zip(apis, sandboxes, strict=True):
        api.delete(f"/api/sandboxes/{sandbox}/")


def kept_spans(run_id: str) -> list[dict]:
    """Return the spans kept with a run, once its trace is kept (bounded wait)."""
    deadline = time.monotonic() + 10
    while not RunTrace.objects.filter(run_id=run_id).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return RunTrace.objects.get(run_id=run_id).spans


def runner_interval(run_id: str) -> tuple[int, int]:
    """Return when a run's runner began and ended, from its own spans ("learner").

    A server may notice a cancelled stream a moment after the runner has
    finished, so its span can end later; what "one at a time" promises is
    that runners never overlap.
    """
    spans = [span for span in kept_spans(run_id) if span["service"] == "learner"]
    assert spans, run_id
    return min(span["start_ns"] for span in spans), max(span["end_ns"] for span in spans)


def test_one_run_at_a_time_and_past_a_queue_of_three_a_429(live_lab, make_user):
    _user, token = make_user(role="learner")
    api = api_for(token)
    sandbox = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox, {"running"})
    answers = [api.post(f"/api/sandboxes/{sandbox}/runs/", SHORT, format="json") for _ in range(6)]
    assert [answer.status_code for answer in answers] == [202] * 4 + [429] * 2
    refused = answers[-1].json()
    assert set(refused) == {"detail", "errors"} and "one experiment at a time" in refused["detail"]
    accepted = [answer.json()["id"] for answer in answers[:4]]
    assert all(wait_run(api, run)["state"] == "done" for run in accepted)
    # From the spans themselves: each run's runner ends before the next one begins.
    intervals = [runner_interval(run) for run in accepted]
    for (_, ended), (began, _) in itertools.pairwise(intervals):
        assert began >= ended
    api.delete(f"/api/sandboxes/{sandbox}/")


def test_queued_runs_reach_the_sandbox_oldest_first_whichever_task_comes_first(live_lab, make_user):
    # The worker's threads take run tasks side by side; here the newest run's task
    # comes first (the older runs' tasks are never sent): it hands over all three.
    _user, token = make_user(role="learner")
    api = api_for(token)
    sandbox = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox, {"running"})
    made = [
        Run.objects.create(sandbox_id=sandbox, experiment="streaming", params=SHORT["params"])
        for _ in range(3)
    ]
    run_execute_task(made[-1].id)
    assert all(wait_run(api, run.id)["state"] == "done" for run in made)
    intervals = [runner_interval(run.id) for run in made]
    assert intervals == sorted(intervals)
    for (_, ended), (began, _) in itertools.pairwise(intervals):
        assert began >= ended
    # A task that comes after its run was handed over hands nothing over again.
    handed = {run.id: Run.objects.get(id=run.id).dispatched_at for run in made}
    run_execute_task(made[0].id)
    assert handed == {run.id: Run.objects.get(id=run.id).dispatched_at for run in made}
    api.delete(f"/api/sandboxes/{sandbox}/")


def test_the_reconciler_hands_over_a_run_whose_task_was_lost(live_lab, make_user):
    _user, token = make_user(role="learner")
    api = api_for(token)
    sandbox = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox, {"running"})
    # Made as run_create makes them, but no task was ever sent (a worker died holding it).
    lost, fresh = (
        Run.objects.create(sandbox_id=sandbox, experiment="one-call", params={"items": 1})
        for _ in range(2)
    )
    Run.objects.filter(id=lost.id).update(
        created_at=timezone.now() - timedelta(seconds=UNDISPATCHED_GRACE_S + 5)
    )
    sandboxes_reconcile()
    # The lost one runs; the one inside its grace may still hear from its own task.
    assert wait_run(api, lost.id)["state"] == "done"
    assert Run.objects.get(id=fresh.id).dispatched_at is None
    assert kept_spans(lost.id)  # it really ran in the sandbox
    api.delete(f"/api/sandboxes/{sandbox}/")


def test_starts_and_runs_are_rate_limited_per_learner(live_lab, make_user, settings):
    rates = {"sandbox_start": "2/min", "run_create": "2/min"}
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    _user, token = make_user(role="learner")
    api = api_for(token)
    first = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    second = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    third = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert [first.status_code, second.status_code, third.status_code] == [201, 201, 429]
    assert set(third.json()) == {"detail", "errors"} and "throttled" in third.json()["detail"]
    assert int(third.headers["Retry-After"]) > 0
    # Another learner is not held back by the first one's limit.
    _other, other_token = make_user(role="learner")
    other = api_for(other_token)
    assert other.post("/api/sandboxes/", {"lesson": LESSON}, format="json").status_code == 201

    sandbox = second.json()["id"]
    wait_state(api, sandbox, {"running"})
    runs = [api.post(f"/api/sandboxes/{sandbox}/runs/", SHORT, format="json") for _ in range(3)]
    assert [run.status_code for run in runs] == [202, 202, 429]
    assert "throttled" in runs[-1].json()["detail"]
    api.delete(f"/api/sandboxes/{sandbox}/")
    other.delete(f"/api/sandboxes/{other.get('/api/sandboxes/').json()[0]['id']}/")


@pytest.mark.django_db(transaction=True)
def test_a_stopping_sandbox_holds_its_place_only_while_its_processes_live(make_user, settings):
    from lab.sandboxes.services import QuotaExceeded, sandbox_start

    settings.LAB_SANDBOXES_PER_SITE = 1
    owner, _ = make_user(role="learner")
    stopping = Sandbox.objects.create(
        owner=owner,
        lesson=LESSON,
        state="stopping",
        expires_at=timezone.now() + timezone.timedelta(minutes=5),
    )
    newcomer, _ = make_user(role="learner")
    alive, connection = (
        keys.sandbox_alive(stopping.id),
        redis.Redis.from_url(os.environ["REDIS_URL"]),
    )
    connection.set(alive, 1, ex=30)  # its supervisor is still ending its services
    try:
        with pytest.raises(QuotaExceeded):
            sandbox_start(user=newcomer, lesson=LESSON)
    finally:
        connection.delete(alive)
    # Its processes are gone (the end not yet recorded): the place is free.
    started = sandbox_start(user=newcomer, lesson=LESSON)
    Sandbox.objects.filter(id=started.id).update(state="stopped")  # never started: no worker here


def test_starts_and_stops_go_on_their_own_queue_apart_from_runs():
    def queue_of(task: str) -> str:
        return app.amqp.router.route({}, f"lab.sandboxes.tasks.{task}")["queue"].name

    control = django_settings.LAB_CELERY_CONTROL_QUEUE
    runs = django_settings.CELERY_TASK_DEFAULT_QUEUE
    assert control != runs
    for task in ("sandbox_start_task", "sandbox_stop_task", "sandbox_ended_task"):
        assert queue_of(task) == control
    for task in ("run_execute_task", "run_event_task", "run_trace_keep_task"):
        assert queue_of(task) == runs
