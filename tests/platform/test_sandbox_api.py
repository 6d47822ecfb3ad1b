"""The sandbox API against the real lab: a real worker, sandbox host and services.

A run's parameters are checked before the sandbox is asked anything, so the
tests of the 400s need only a sandbox row the learner controls.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from lab.sandboxes.models import Run, Sandbox, SandboxState
from sandbox_services.runtime import client
from sandbox_services.runtime.plan import load_lab

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
    assert response.status_code == 400
    assert response.json()["errors"] == {"params.concurrency": ["must be between 1 and 64"]}
    response = api.post(
        runs, {"experiment": "load", "params": {"concurrency": "many"}}, format="json"
    )
    assert response.status_code == 400 and "params.concurrency" in response.json()["errors"]
    queued = api.post(runs, {"experiment": "streaming", "params": {"duration_s": 1}}, format="json")
    assert queued.status_code == 202, queued.content
    # The run gets the validated parameters, defaults filled in, and runs with them.
    assert queued.json()["params"] == {"duration_s": 1, "poll_interval_ms": 250}
    run = wait_run(api, queued.json()["id"])
    assert run["state"] == "done", run["error"]
    assert run["params"] == {"duration_s": 1, "poll_interval_ms": 250}
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


# -- a run's parameters: one declaration, one validator, a 400 naming the field ----------


@pytest.fixture
def runs_url(learner):
    """The runs URL of a sandbox row of the learner's, marked running (no services needed)."""
    user, _api = learner
    sandbox = Sandbox.objects.create(
        owner=user,
        lesson=LESSON,
        state=SandboxState.RUNNING,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return f"/api/sandboxes/{sandbox.id}/runs/"


def post_raw(api, url: str, text: str):
    """POST JSON text as it is: Python's json cannot write 1e400 or a bare 400-digit literal."""
    return api.post(url, data=text, content_type="application/json")


def refused(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"detail", "errors"} and body["detail"]
    assert Run.objects.count() == 0
    return body


def test_an_out_of_range_parameter_is_a_400_naming_the_field_and_the_bound(learner, runs_url):
    _user, api = learner
    body = refused(
        api.post(runs_url, {"experiment": "one-call", "params": {"items": 5000}}, format="json")
    )
    assert body["errors"] == {"params.items": ["must be between 1 and 1000"]}
    assert body["detail"] == "params.items: must be between 1 and 1000"


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("1e400", "must be a finite number between 1 and 1000"),
        ("-1e400", "must be a finite number between 1 and 1000"),
        ("9" * 400, "must be between 1 and 1000"),
        ("-" + "9" * 400, "must be between 1 and 1000"),
    ],
)
def test_huge_numbers_are_a_400_never_a_500(learner, runs_url, literal, message):
    _user, api = learner
    text = '{"experiment": "one-call", "params": {"items": ' + literal + "}}"
    assert refused(post_raw(api, runs_url, text))["errors"] == {"params.items": [message]}


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "9" * 400])
def test_huge_numbers_for_a_float_parameter_are_a_400(learner, runs_url, literal):
    _user, api = learner
    text = '{"experiment": "load", "params": {"sample_ratio": ' + literal + "}}"
    errors = refused(post_raw(api, runs_url, text))["errors"]
    assert list(errors) == ["params.sample_ratio"]
    assert "between 0.0 and 1.0" in errors["params.sample_ratio"][0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "must be a number (int), not true or false"),
        ("10", "must be a number (int), not a string"),
        (10.5, "must be a whole number"),
        (None, "must be a number (int), not null"),
    ],
)
def test_a_number_parameter_takes_only_a_json_number(learner, runs_url, value, message):
    _user, api = learner
    response = api.post(
        runs_url, {"experiment": "one-call", "params": {"items": value}}, format="json"
    )
    assert refused(response)["errors"] == {"params.items": [message]}


def test_an_unknown_parameter_is_a_400(learner, runs_url):
    _user, api = learner
    response = api.post(
        runs_url, {"experiment": "one-call", "params": {"items": 5, "colour": "red"}}, format="json"
    )
    assert refused(response)["errors"] == {
        "params.colour": ["unknown parameter; this experiment expected one of: items"]
    }
    response = api.post(runs_url, {"experiment": "contract", "params": {"items": 5}}, format="json")
    assert refused(response)["errors"] == {
        "params.items": ["unknown parameter; this experiment takes none"]
    }


@pytest.mark.parametrize("params", [[1, 2], "items=5", 5, None])
def test_params_that_are_not_an_object_are_a_400(learner, runs_url, params):
    _user, api = learner
    response = api.post(runs_url, {"experiment": "one-call", "params": params}, format="json")
    assert list(refused(response)["errors"]) == ["params"]


def test_every_bad_field_is_named_at_once(learner, runs_url):
    _user, api = learner
    params = {"concurrency": 0, "duration_s": "3", "sample_ratio": 2.0}
    errors = refused(api.post(runs_url, {"experiment": "load", "params": params}, format="json"))[
        "errors"
    ]
    assert errors == {
        "params.concurrency": ["must be between 1 and 64"],
        "params.duration_s": ["must be a number (int), not a string"],
        "params.sample_ratio": ["must be between 0.0 and 1.0"],
    }


def test_a_queued_run_keeps_the_validated_parameters_with_defaults(learner, runs_url):
    _user, api = learner
    response = api.post(
        runs_url, {"experiment": "load", "params": {"concurrency": 2, "items": 5.0}}, format="json"
    )
    assert response.status_code == 202, response.content
    declared = {p.name: p.default for p in load_lab(LESSON).experiment("load").parameters}
    expected = {**declared, "concurrency": 2, "items": 5}
    assert response.json()["params"] == expected
    stored = Run.objects.get(id=response.json()["id"]).params
    assert stored == expected and type(stored["items"]) is int
