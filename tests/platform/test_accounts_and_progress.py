"""Users, guests, tokens and progress through the JSON API."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from lab.users.selectors import role_of
from lab.curriculum.selectors import lesson_get

from .helpers import LESSON, api_for


@pytest.fixture
def lesson():
    return lesson_get(slug=LESSON)


def test_labuser_creates_then_updates_and_prints_a_token(db, capsys):
    call_command("labuser", "ada", "--role", "learner")
    first = capsys.readouterr().out.strip()
    call_command("labuser", "ada", "--role", "instructor")
    second = capsys.readouterr().out.strip()
    assert len(first) == 40 and first == second
    user = get_user_model().objects.get(username="ada")
    assert role_of(user) == "instructor"
    assert api_for(first).get("/api/sandboxes/").status_code == 200


def test_a_visitor_becomes_a_guest_and_signing_up_keeps_progress(db, lesson):
    from lab.users.services import guest_convert

    browser = APIClient()
    step = lesson.steps[0].id
    # The API makes no guest: an anonymous write is refused.
    response = browser.post(f"/api/lessons/{LESSON}/progress/", {"step": step}, format="json")
    assert response.status_code == 403 and not get_user_model().objects.exists()
    # "Try as a guest" does (tests/platform/test_security.py checks its CSRF and origin).
    assert browser.post("/accounts/guest/", {"next": "/"}).status_code == 302
    response = browser.post(f"/api/lessons/{LESSON}/progress/", {"step": step}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["progress"]["steps"][step] is True
    guest = get_user_model().objects.get(username__startswith="guest-")
    assert role_of(guest) == "guest"
    guest_convert(user=guest, username="grace", password="a-long-password-1")
    # A new password ends the guest's session, as it should; the learner signs in.
    assert browser.login(username="grace", password="a-long-password-1")
    again = browser.get(f"/api/lessons/{LESSON}/").json()
    assert again["progress"]["steps"][step] is True
    assert role_of(get_user_model().objects.get(username="grace")) == "learner"


def test_quiz_answers_are_checked_on_the_server(db, lesson, make_user):
    quiz = next((item for item in lesson.checkpoints if item.kind == "quiz"), None)
    if quiz is None:
        pytest.skip("the lesson has no quiz checkpoint")
    _user, token = make_user()
    api = api_for(token)
    url = f"/api/lessons/{LESSON}/progress/"
    detail = api.get(f"/api/lessons/{LESSON}/").json()
    assert all("answer" not in checkpoint for checkpoint in detail["checkpoints"])
    wrong = (quiz.answer + 1) % len(quiz.choices)
    assert (
        api.post(url, {"checkpoint": quiz.id, "answer": wrong}, format="json").json()["passed"]
        is False
    )
    right = api.post(url, {"checkpoint": quiz.id, "answer": quiz.answer}, format="json").json()
    assert right["passed"] is True and right["progress"]["checkpoints"][quiz.id] is True
    bad = api.post(url, {"checkpoint": quiz.id, "answer": 99}, format="json")
    assert bad.status_code == 400 and "answer" in bad.json()["errors"]
    unknown = api.post(url, {"checkpoint": "nope"}, format="json")
    assert unknown.status_code == 400 and "checkpoint" in unknown.json()["errors"]


def test_lessons_api_lists_experiments_with_bounded_parameters(db):
    lessons = APIClient().get("/api/lessons/").json()
    rest = next(item for item in lessons if item["slug"] == LESSON)
    assert {"slug", "title", "summary", "steps", "experiments"} <= set(rest)
    for experiment in rest["experiments"]:
        for parameter in experiment["parameters"]:
            assert parameter["type"] in ("int", "float", "choice", "bool")
            if parameter["type"] in ("int", "float"):
                assert parameter["min"] <= parameter["default"] <= parameter["max"]
    assert APIClient().get("/api/lessons/no-such/").status_code == 404


def test_the_openapi_schema_describes_the_public_calls(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/lessons/",
        "/api/sandboxes/",
        "/api/sandboxes/{sandbox_id}/",
        "/api/sandboxes/{sandbox_id}/runs/",
        "/api/sandboxes/{sandbox_id}/faults/",
        "/api/runs/{run_id}/",
    ):
        assert path in paths
