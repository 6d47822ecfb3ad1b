"""Warm pools: sandboxes an instructor starts ahead of a class, taken by its learners.

On the real worker, sandbox host and services. The evidence is the supervisors'
own (their heartbeat keys, their idle clocks in Redis, their processes) and the
database's rows, not the API's word for itself.
"""

import time

import pytest
import redis
from django.conf import settings as django_settings
from django.test import override_settings

from lab.classroom.services import cohort_create
from lab.sandboxes import services
from lab.sandboxes.models import Sandbox, SandboxState, WarmPool
from sandbox_services.runtime import client, keys

from .helpers import LESSON, api_for, pid_alive, service_pids, wait_run, wait_state


def _wait_pool(api, pool_id: int, *, warm: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = api.get(f"/api/warm-pools/{pool_id}/").json()
        if body.get("warm") == warm and body.get("starting") == 0:
            return body
        time.sleep(0.2)
    raise AssertionError(f"pool stayed {body}, wanted {warm} warm")


def _warm(teacher, cohort, size: int) -> int:
    """Warm ``size`` sandboxes of LESSON for the cohort; return the pool's id once all run."""
    body = {"cohort": cohort.id, "lesson": LESSON, "size": size, "minutes": 10}
    pool_id = teacher.post("/api/warm-pools/", body, format="json").json()["id"]
    _wait_pool(teacher, pool_id, warm=size)
    return pool_id


def _wait_gone(sandbox_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.is_alive(sandbox_id):
        assert time.monotonic() < deadline, f"{sandbox_id} still alive"
        time.sleep(0.2)


@pytest.fixture
def cohort(make_user):
    instructor, instructor_token = make_user(role="instructor")
    learner, learner_token = make_user(role="learner")
    cohort = cohort_create(instructor=instructor, name=f"warm {learner.username}")
    cohort.learners.add(learner)
    return cohort, instructor_token, learner_token


def test_a_learner_of_the_cohort_takes_a_running_warm_sandbox_and_an_outsider_starts_cold(
    live_lab, make_user, cohort
):
    cohort, instructor_token, learner_token = cohort
    _outsider, outsider_token = make_user(role="learner")
    teacher, learner, outsider = (
        api_for(instructor_token),
        api_for(learner_token),
        api_for(outsider_token),
    )
    created = teacher.post(
        "/api/warm-pools/",
        {"cohort": cohort.id, "lesson": LESSON, "size": 2, "minutes": 10},
        format="json",
    )
    assert created.status_code == 201, created.json()
    pool = _wait_pool(teacher, created.json()["id"], warm=2)
    warm_ids = set(Sandbox.objects.filter(warm_pool_id=pool["id"]).values_list("id", flat=True))
    assert len(warm_ids) == 2 and all(client.is_alive(i) for i in warm_ids)
    store = redis.Redis.from_url(django_settings.REDIS_URL)
    idle_ms = django_settings.LAB_SANDBOX_IDLE_TIMEOUT * 1000
    # Waiting in the pool, a warm sandbox's idle clock runs to the pool's end, not 15 min.
    assert all(store.pttl(keys.sandbox_touch(i)) > idle_ms for i in warm_ids)
    # Nobody but its keeper's superusers sees an untaken one.
    assert all(learner.get(f"/api/sandboxes/{i}/").status_code == 404 for i in warm_ids)

    taken = learner.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert taken.status_code == 201, taken.json()
    body = taken.json()
    assert body["id"] in warm_ids and body["state"] == "running"
    row = Sandbox.objects.get(id=body["id"])
    assert row.owner.profile.role == "learner" and row.taken_at is not None
    assert store.pttl(keys.sandbox_touch(row.id)) <= idle_ms  # its idle clock started now
    # It is a live sandbox: the learner runs an experiment in it and its services answer.
    run = learner.post(
        f"/api/sandboxes/{row.id}/runs/",
        {"experiment": "one-call", "params": {}},
        format="json",
    )
    assert run.status_code == 202, run.json()
    assert wait_run(learner, run.json()["id"])["state"] == "done"

    cold = outsider.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()
    assert cold["id"] not in warm_ids and cold["state"] == "starting"
    assert teacher.get(f"/api/warm-pools/{pool['id']}/").json()["taken"] == 1

    # Ending the pool stops what nobody took; the learner's sandbox is theirs and runs on.
    (untaken,) = warm_ids - {row.id}
    untaken_pids = service_pids(Sandbox.objects.get(id=untaken).services)
    ended = teacher.delete(f"/api/warm-pools/{pool['id']}/")
    assert ended.status_code == 200 and ended.json()["live"] is False
    _wait_gone(untaken)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in untaken_pids):
        assert time.monotonic() < deadline, "the untaken sandbox's services still run"
        time.sleep(0.2)
    assert client.is_alive(row.id)
    assert wait_state(learner, row.id, {"running"})["state"] == "running"
    wait_state(outsider, cold["id"], {"running"})


def test_a_full_site_stops_an_untaken_warm_sandbox_for_a_learner_who_comes(
    live_lab, make_user, cohort
):
    cohort, instructor_token, _learner_token = cohort
    teacher = api_for(instructor_token)
    pool_id = _warm(teacher, cohort, 2)
    newcomer, newcomer_token = make_user(role="learner")  # in no cohort: nothing warm is theirs
    with override_settings(LAB_SANDBOXES_PER_SITE=2):
        started = services.sandbox_start(user=newcomer, lesson=LESSON)
    stopping = Sandbox.objects.filter(warm_pool_id=pool_id, state=SandboxState.STOPPING)
    assert stopping.count() == 1
    _wait_gone(stopping.get().id)
    assert wait_state(api_for(newcomer_token), started.id, {"running"})["state"] == "running"


def test_untaken_warm_sandboxes_of_a_deleted_cohort_are_stopped(live_lab, cohort):
    from lab.sandboxes.tasks import sandboxes_reconcile

    cohort, instructor_token, _learner_token = cohort
    teacher = api_for(instructor_token)
    pool_id = _warm(teacher, cohort, 1)
    (warm,) = Sandbox.objects.filter(warm_pool_id=pool_id)
    cohort.delete()  # the pool goes with it; its sandbox would otherwise run to the pool's end
    sandboxes_reconcile()
    _wait_gone(warm.id)
    assert Sandbox.objects.get(id=warm.id).state in (SandboxState.STOPPING, SandboxState.STOPPED)


def test_a_pool_made_smaller_stops_its_newest_untaken_sandbox(live_lab, cohort):
    cohort, instructor_token, _learner_token = cohort
    teacher = api_for(instructor_token)
    pool_id = _warm(teacher, cohort, 2)
    oldest, newest = Sandbox.objects.filter(warm_pool_id=pool_id).order_by("created_at")
    body = {"cohort": cohort.id, "lesson": LESSON, "size": 1, "minutes": 10}
    smaller = teacher.post("/api/warm-pools/", body, format="json")
    assert smaller.status_code == 201 and smaller.json()["id"] == pool_id
    services.warm_pool_fill(pool_id=pool_id)  # as its fill task or the reconciler does
    _wait_gone(newest.id)
    assert client.is_alive(oldest.id)
    assert _wait_pool(teacher, pool_id, warm=1)["warm"] == 1
    teacher.delete(f"/api/warm-pools/{pool_id}/")


def test_only_the_cohorts_instructors_warm_sandboxes_and_bad_input_is_a_400(
    live_lab, make_user, cohort
):
    cohort, instructor_token, learner_token = cohort
    _other, other_token = make_user(role="instructor")
    good = {"cohort": cohort.id, "lesson": LESSON, "size": 1, "minutes": 5}
    assert api_for(learner_token).post("/api/warm-pools/", good, format="json").status_code == 403
    foreign = api_for(other_token).post("/api/warm-pools/", good, format="json")
    assert foreign.status_code == 400 and "cohort" in foreign.json()["errors"]
    teacher = api_for(instructor_token)
    for field, value in (
        ("size", 0),
        ("size", True),
        ("size", 10**400),
        ("minutes", 1),
        ("minutes", 241),
        ("lesson", "no-such-lesson"),
    ):
        answer = teacher.post("/api/warm-pools/", {**good, field: value}, format="json")
        assert answer.status_code == 400, (field, value, answer.content)
        assert field in answer.json()["errors"], answer.json()
    assert WarmPool.objects.count() == 0
    pool = teacher.post("/api/warm-pools/", good, format="json").json()
    assert api_for(other_token).get(f"/api/warm-pools/{pool['id']}/").status_code == 404
    assert api_for(other_token).delete(f"/api/warm-pools/{pool['id']}/").status_code == 404
    assert api_for(other_token).get("/api/warm-pools/").json() == []
    assert teacher.get(f"/api/warm-pools/{10**30}/").status_code == 404
    # Asking again resizes the one pool of this cohort and lesson.
    again = teacher.post("/api/warm-pools/", {**good, "size": 2}, format="json").json()
    assert again["id"] == pool["id"] and again["size"] == 2
    teacher.delete(f"/api/warm-pools/{pool['id']}/")
