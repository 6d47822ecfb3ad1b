"""Scenarios against the real lab: a worker, real sandboxes, their faults and their kept spans."""

import time

import pytest

from lab.classroom.models import ScenarioTarget
from lab.classroom.selectors import class_state
from lab.classroom.services import cohort_create, cohort_join, scenario_push
from lab.curriculum.selectors import lesson_get
from lab.sandboxes.models import Run, Sandbox, SandboxState
from lab.sandboxes.services import run_create, sandbox_start

LESSON = "rest-vs-grpc"


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cohort_with_two_sandboxes(live_lab, make_user):
    teacher, _ = make_user("teacher", "instructor")
    cohort = cohort_create(instructor=teacher, name="Scenarios")
    sandboxes = []
    for name in ("ada", "bob"):
        learner, _ = make_user(name, "learner")
        cohort_join(learner=learner, code=cohort.join_code.code)
        sandboxes.append(sandbox_start(user=learner, lesson=LESSON))
    for sandbox in sandboxes:
        wait_until(
            lambda sandbox=sandbox: (
                Sandbox.objects.get(id=sandbox.id).state == SandboxState.RUNNING
            ),
            40,
            "the sandboxes to run",
        )
    return teacher, cohort, [Sandbox.objects.get(id=sandbox.id) for sandbox in sandboxes]


def test_a_stopped_service_is_confirmed_by_failing_calls_and_started_again_when_time_is_up(
    cohort_with_two_sandboxes,
):
    teacher, cohort, sandboxes = cohort_with_two_sandboxes
    scenario = scenario_push(
        instructor=teacher,
        cohort=cohort,
        lesson=LESSON,
        service="catalog-grpc",
        action="stop",
        duration_s=10,
    )
    assert scenario.describe() == "stop catalog-grpc for 10 s"
    targets = ScenarioTarget.objects.filter(scenario=scenario)
    wait_until(lambda: targets.filter(applied=True).count() == 2, 20, "the stop to apply")
    for sandbox in sandboxes:
        sandbox.refresh_from_db()
        assert sandbox.services["catalog-grpc"]["state"] == "stopped"
        run_create(sandbox=sandbox, experiment="one-call", params={})
    wait_until(
        lambda: (
            Run.objects.filter(sandbox__in=sandboxes, state__in=("done", "failed")).count() == 2
        ),
        60,
        "the runs to finish",
    )
    wait_until(lambda: targets.filter(confirmed_at__isnull=False).count() == 2, 20, "confirmations")
    for target in targets:
        assert "to catalog-grpc failed" in target.evidence, target.evidence

    state = class_state(viewer=teacher, cohort=cohort, lesson=lesson_get(slug=LESSON))
    (shown,) = [item for item in state["scenarios"] if item["id"] == scenario.id]
    assert shown["active"] and {target["learner"] for target in shown["targets"]} == {
        "ada",
        "bob",
    }
    assert all(target["confirmed"] for target in shown["targets"])

    # Its time is up: the watcher ends it and starts the service again in each sandbox.
    wait_until(lambda: targets.filter(cleared=True).count() == 2, 30, "the scenario to end")
    scenario.refresh_from_db()
    assert scenario.ended_at is not None
    for sandbox in sandboxes:
        sandbox.refresh_from_db()
        assert sandbox.services["catalog-grpc"]["state"] == "running"
