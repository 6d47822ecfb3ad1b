"""The home page: the path through the lessons with times, and each claim with what the site measured."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from lab.curriculum.selectors import lesson_list
from lab.sandboxes.models import Run, RunState, Sandbox, SandboxState


def done_run(owner, lesson: str, experiment: str, result: dict) -> Run:
    sandbox = Sandbox.objects.create(
        owner=owner,
        lesson=lesson,
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return Run.objects.create(
        sandbox=sandbox,
        experiment=experiment,
        state=RunState.DONE,
        result=result,
        finished_at=timezone.now(),
    )


@pytest.mark.django_db
def test_home_shows_the_path_in_order_with_times_claims_and_the_picture():
    page = Client().get("/").content.decode()
    lessons = lesson_list()
    positions = [page.index(f'data-lesson="{lesson.slug}"') for lesson in lessons]
    assert positions == sorted(positions), "the lessons in their order"
    claimed = [lesson for lesson in lessons if lesson.claim]
    assert {"rest-vs-grpc", "async-messaging", "event-sourcing", "saga"} <= {
        lesson.slug for lesson in claimed
    }
    for lesson in lessons:
        assert f"about {lesson.minutes} min" in page
    for lesson in claimed:
        assert lesson.claim["text"] in page
    assert page.count('data-held="not-run"') == len(claimed)
    assert "Not run yet on this site." in page
    assert "Try as a guest" in page
    assert "0% done" not in page, "a visitor has no progress to show"
    assert "lab/img/live-view.png" in page
    assert (settings.BASE_DIR / "static/lab/img/live-view.png").stat().st_size > 10_000


@pytest.mark.django_db
def test_a_claim_says_whether_it_held_from_the_latest_recorded_run(make_user):
    learner, _ = make_user()
    done_run(
        learner,
        "rest-vs-grpc",
        "one-call",
        {
            "headline": "old",
            "summary": [
                {"label": "REST call on the wire", "value": 100, "unit": "B"},
                {"label": "gRPC call on the wire", "value": 200, "unit": "B"},
            ],
        },
    )
    page = Client().get("/").content.decode()
    assert 'data-held="not-held"' in page and "0.50" in page

    done_run(
        learner,
        "rest-vs-grpc",
        "one-call",
        {
            "headline": "new",
            "summary": [
                {"label": "REST call on the wire", "value": 2664, "unit": "B"},
                {"label": "gRPC call on the wire", "value": 1454, "unit": "B"},
            ],
        },
    )
    done_run(learner, "saga", "failure", {"headline": "undone", "summary": [], "ok": True})
    page = Client().get("/").content.decode()
    rest = page[page.index('data-lesson="rest-vs-grpc"') :][:3000]
    assert 'data-held="held"' in rest
    assert "REST call on the wire / gRPC call on the wire = 1.83" in rest
    saga = page[page.index('data-lesson="saga"') :][:3000]
    assert 'data-held="held"' in saga and "kept its invariants" in saga


@pytest.mark.django_db
def test_a_visitor_reads_the_predictions_of_a_lesson_without_recording_one():
    page = Client().get("/lessons/rest-vs-grpc/").content.decode()
    assert 'id="checkpoint-predict-wire-ratio"' in page
    assert 'data-kind="predict"' in page
    assert "Predictions are recorded for signed-in learners and guests." in page
    assert Client().post("/class/predictions/rest-vs-grpc/predict-wire-ratio/").status_code == 403
