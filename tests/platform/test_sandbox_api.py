"""The sandbox API against the real lab: a real worker, sandbox host and services."""

import pytest

from lab.sandboxes.models import Sandbox

from sandbox_services.runtime import client

from .helpers import (
    LESSON,
    api_for,
    descendants,
    pid_alive,
    service_pids,
    wait_run,
    wait_state,
)


@pytest.fixture
def learner(make_user):
    user, token = make_user(role="learner")
    return user, api_for(token)


def test_sandbox_starts_runs_an_experiment_and_stops(live_lab, learner):
    _user, api = learner
    created = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["state"] == "starting" and body["lesson"] == LESSON and body["expires_at"]
    running = wait_state(api, body["id"], {"running", "failed"})
    assert running["state"] == "running", running["reason"]
    assert "pid" not in str(running["services"]), "process ids stay on the host"
    status = client.status(body["id"])
    pids = descendants([status["pid"], *service_pids(status["services"])])
    assert len(pids) >= 4 and all(pid_alive(pid) for pid in pids)

    queued = api.post(
        f"/api/sandboxes/{body['id']}/runs/",
        {"experiment": "one-call", "params": {}},
        format="json",
    )
    assert queued.status_code == 202, queued.content
    run = wait_run(api, queued.json()["id"])
    assert run["state"] == "done", run["error"]
    assert run["result"]

    assert api.delete(f"/api/sandboxes/{body['id']}/").status_code == 202
    stopped = wait_state(api, body["id"], {"stopped"})
    assert stopped["stopped_at"]
    wait_until_dead(pids)


def wait_until_dead(pids, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not [pid for pid in pids if pid_alive(pid)]


def test_bad_input_gets_a_4xx_naming_the_field(live_lab, learner):
    _user, api = learner
    response = api.post("/api/sandboxes/", {"lesson": "no-such-lesson"}, format="json")
    assert response.status_code == 400
    assert "lesson" in response.json()["errors"] and response.json()["detail"]
    response = api.post("/api/sandboxes/", {}, format="json")
    assert response.status_code == 400 and "lesson" in response.json()["errors"]
    assert Sandbox.objects.count() == 0

    sandbox_id = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox_id, {"running"})
    runs = f"/api/sandboxes/{sandbox_id}/runs/"
    response = api.post(runs, {"experiment": "nope"}, format="json")
    assert response.status_code == 400 and "experiment" in response.json()["errors"]
    response = api.post(
        runs, {"experiment": "load", "params": {"concurrency": 100000}}, format="json"
    )
    assert response.status_code == 400 and "params.concurrency" in response.json()["errors"]
    response = api.post(
        runs, {"experiment": "load", "params": {"concurrency": "many"}}, format="json"
    )
    assert response.status_code == 400 and "params.concurrency" in response.json()["errors"]
    faults = f"/api/sandboxes/{sandbox_id}/faults/"
    response = api.post(faults, {"service": "caller", "action": "explode"}, format="json")
    assert response.status_code == 400 and "action" in response.json()["errors"]
    response = api.post(faults, {"service": "nobody", "action": "stop"}, format="json")
    assert response.status_code == 400 and "service" in response.json()["errors"]
    response = api.post(
        faults, {"service": "caller", "action": "delay", "delay_ms": -5}, format="json"
    )
    assert response.status_code == 400 and "delay_ms" in response.json()["errors"]
    api.delete(f"/api/sandboxes/{sandbox_id}/")


def test_another_learners_sandbox_is_refused_and_an_instructor_watches_read_only(
    live_lab, learner, make_user
):
    from lab.users.models import Cohort

    owner, api = learner
    _other, other_token = make_user(role="learner")
    teacher, teacher_token = make_user(role="instructor")
    cohort = Cohort.objects.create(name="the owner's class")  # instructors watch their cohorts
    cohort.instructors.add(teacher)
    cohort.learners.add(owner)
    other, teacher = api_for(other_token), api_for(teacher_token)
    sandbox_id = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox_id, {"running"})
    base = f"/api/sandboxes/{sandbox_id}/"
    assert other.get(base).status_code == 404
    assert other.delete(base).status_code == 404
    assert other.post(base + "runs/", {"experiment": "one-call"}, format="json").status_code == 404
    assert (
        other.post(
            base + "faults/", {"service": "caller", "action": "stop"}, format="json"
        ).status_code
        == 404
    )
    assert sandbox_id not in [item["id"] for item in other.get("/api/sandboxes/").json()]
    assert teacher.get(base).status_code == 200
    assert teacher.delete(base).status_code == 403
    assert (
        teacher.post(
            base + "faults/", {"service": "caller", "action": "stop"}, format="json"
        ).status_code
        == 403
    )
    assert api.get(base).json()["state"] == "running"
    api.delete(base)


def test_a_second_sandbox_replaces_the_first_and_the_site_cap_refuses_cleanly(
    live_lab, learner, make_user, settings
):
    _user, api = learner
    first = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, first, {"running"})
    second = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, first, {"stopped"})
    wait_state(api, second, {"running"})

    settings.LAB_SANDBOXES_PER_SITE = 1
    _other, other_token = make_user(role="learner")
    refused = api_for(other_token).post("/api/sandboxes/", {"lesson": LESSON}, format="json")
    assert refused.status_code == 429
    assert "full" in refused.json()["detail"]
    assert Sandbox.objects.filter(owner=_other).count() == 0
    api.delete(f"/api/sandboxes/{second}/")


def test_a_fault_shows_in_the_service_state(live_lab, learner):
    _user, api = learner
    sandbox_id = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    running = wait_state(api, sandbox_id, {"running"})
    service = (
        "catalog-rest" if "catalog-rest" in running["services"] else next(iter(running["services"]))
    )
    faults = f"/api/sandboxes/{sandbox_id}/faults/"
    stopped = api.post(faults, {"service": service, "action": "stop"}, format="json")
    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["services"][service]["state"] == "stopped"
    started = api.post(faults, {"service": service, "action": "start"}, format="json")
    assert started.json()["services"][service]["state"] == "running"
    slowed = api.post(
        faults, {"service": service, "action": "delay", "delay_ms": 50}, format="json"
    )
    assert slowed.status_code == 200
    api.delete(f"/api/sandboxes/{sandbox_id}/")
