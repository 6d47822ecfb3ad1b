"""Cohorts on the site: make one, join it by code, export its progress, and keep others out."""

import csv
import io
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from lab.asgi import application
from lab.classroom.models import Prediction
from lab.classroom.services import cohort_create, cohort_join, prediction_record
from lab.curriculum.selectors import lesson_get
from lab.curriculum.services import progress_record
from lab.sandboxes.models import Run, RunState, Sandbox, SandboxState
from lab.users.models import Cohort

LESSON = "rest-vs-grpc"


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Give each test's event loop its own channel layer: channels_redis binds locks to a loop."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def signed_in(user, password: str) -> Client:
    client = Client()
    assert client.login(username=user.username, password=password)
    return client


@pytest.mark.django_db
def test_an_instructor_makes_a_cohort_and_a_learner_joins_it_with_the_code(make_user):
    teacher, _ = make_user(role="instructor", password="a long pass phrase 1")
    learner, _ = make_user(role="learner", password="a long pass phrase 2")

    page = signed_in(teacher, "a long pass phrase 1")
    response = page.post("/class/", {"name": "Tuesday group"})
    assert response.status_code == 302
    cohort = Cohort.objects.get(name="Tuesday group")
    assert list(cohort.instructors.all()) == [teacher]
    code = cohort.join_code.code
    assert len(code) == 8
    listing = page.get("/class/").content.decode()
    assert code in listing and "Tuesday group" in listing

    student = signed_in(learner, "a long pass phrase 2")
    refused = student.post("/class/join/", {"code": "NOPE1234"})
    assert refused.status_code == 400
    assert "no cohort has that code" in refused.content.decode()
    # Codes are read aloud: spaces and lower case are forgiven.
    joined = student.post("/class/join/", {"code": f" {code[:4].lower()} {code[4:]} "})
    assert joined.status_code == 302
    assert list(cohort.learners.all()) == [learner]
    # A learner cannot make cohorts.
    assert student.post("/class/", {"name": "Mine"}).status_code == 403


@pytest.mark.django_db
def test_an_instructor_of_another_cohort_is_refused(make_user):
    teacher, _ = make_user(role="instructor", password="a long pass phrase 1")
    other, _ = make_user(role="instructor", password="a long pass phrase 3")
    learner, _ = make_user(role="learner")
    cohort = cohort_create(instructor=teacher, name="Mine")
    cohort_join(learner=learner, code=cohort.join_code.code)

    outsider = signed_in(other, "a long pass phrase 3")
    assert outsider.get(f"/class/cohorts/{cohort.id}/").status_code == 404
    assert outsider.get(f"/class/cohorts/{cohort.id}/progress.csv").status_code == 404
    pushed = outsider.post(
        f"/class/cohorts/{cohort.id}/scenarios/",
        {"lesson": LESSON, "service": "catalog-rest", "action": "stop", "duration_s": 60},
    )
    assert pushed.status_code == 404
    assert cohort.scenarios.count() == 0
    # The owner's own page opens.
    assert (
        signed_in(teacher, "a long pass phrase 1").get(f"/class/cohorts/{cohort.id}/").status_code
        == 200
    )


@pytest.mark.django_db(transaction=True)
async def test_the_class_socket_refuses_an_instructor_of_another_cohort(make_user):
    teacher, _ = await sync_to_async(make_user)(role="instructor")
    _other, other_token = await sync_to_async(make_user)(role="instructor")
    cohort = await sync_to_async(cohort_create)(instructor=teacher, name="Closed")
    communicator = WebsocketCommunicator(
        application,
        f"/ws/classroom/cohorts/{cohort.id}/",
        headers=[(b"authorization", f"Token {other_token}".encode())],
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_class_view_is_pushed_when_a_learner_finishes_a_step(make_user):
    teacher, token = await sync_to_async(make_user)(role="instructor")
    learner, _ = await sync_to_async(make_user)(name="ada", role="learner")
    cohort = await sync_to_async(cohort_create)(instructor=teacher, name="Live")
    await sync_to_async(cohort_join)(learner=learner, code=cohort.join_code.code)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/classroom/cohorts/{cohort.id}/?lesson={LESSON}",
        headers=[(b"authorization", f"Token {token}".encode())],
    )
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "class"
    (row,) = first["class"]["learners"]
    assert row["username"] == "ada"
    assert row["steps"]["styles"] == "current"

    lesson = await sync_to_async(lesson_get)(slug=LESSON)
    await sync_to_async(progress_record)(user=learner, lesson=lesson, step="styles")

    # No request from this side: the server pushes the change.
    pushed = await communicator.receive_json_from(timeout=5)
    (row,) = pushed["class"]["learners"]
    assert row["steps"]["styles"] == "done"
    step_ids = [step.id for step in lesson.steps]
    assert row["steps"][step_ids[step_ids.index("styles") + 1]] == "current"
    await communicator.disconnect()


@pytest.mark.django_db
def test_the_progress_csv_lists_steps_checkpoints_and_graded_predictions(make_user):
    teacher, _ = make_user(role="instructor", password="a long pass phrase 1")
    learner, _ = make_user(name="grace", role="learner")
    cohort = cohort_create(instructor=teacher, name="Export")
    cohort_join(learner=learner, code=cohort.join_code.code)
    lesson = lesson_get(slug=LESSON)
    progress_record(user=learner, lesson=lesson, step="styles")
    quiz = next(checkpoint for checkpoint in lesson.checkpoints if checkpoint.kind == "quiz")
    wrong = next(index for index in range(len(quiz.choices)) if index != quiz.answer)
    progress_record(user=learner, lesson=lesson, checkpoint=quiz.id, answer=wrong)
    prediction_record(user=learner, lesson=lesson, checkpoint_id="predict-wire-ratio", value="2")
    sandbox = Sandbox.objects.create(
        owner=learner,
        lesson=LESSON,
        state=SandboxState.STOPPED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    run = Run.objects.create(sandbox=sandbox, experiment="one-call", params={})
    run.state = RunState.DONE
    run.result = {
        "headline": "h",
        "summary": [
            {"label": "REST call on the wire", "value": 900, "unit": "B"},
            {"label": "gRPC call on the wire", "value": 400, "unit": "B"},
        ],
    }
    run.save()

    response = signed_in(teacher, "a long pass phrase 1").get(
        f"/class/cohorts/{cohort.id}/progress.csv"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_item = {(row["lesson"], row["item"]): row for row in rows if row["learner"] == "grace"}
    assert by_item[(LESSON, "styles")]["status"] == "done"
    assert by_item[(LESSON, "styles")]["at"]
    assert by_item[(LESSON, "load")]["status"] == ""
    assert by_item[(LESSON, quiz.id)]["answer"] == quiz.choices[wrong]
    assert by_item[(LESSON, quiz.id)]["status"] == ""
    predicted = by_item[(LESSON, "predict-wire-ratio")]
    assert predicted["kind"] == "predict"
    assert predicted["predicted"] == "2 x"
    assert predicted["observed"] == "2.25 x"
    assert predicted["prediction_correct"] == "true"  # within 30% of 2.25
    assert predicted["status"] == "passed"
    assert {row["cohort"] for row in rows} == {"Export"}
    assert Prediction.objects.get(user=learner).run_id == run.id

    # The class results carry the class's predictions beside what was measured.
    from lab.classroom.selectors import class_state

    results = class_state(viewer=teacher, cohort=cohort, lesson=lesson)["results"]
    (one_call,) = [item for item in results if item["experiment"] == "one-call"]
    figures = {figure["label"]: figure for figure in one_call["figures"]}
    ratio = figures["REST call on the wire / gRPC call on the wire"]
    assert ratio["values"] == [{"learner": "grace", "value": 2.25}]
    assert ratio["predicted"] == [{"learner": "grace", "value": 2.0}]


@pytest.mark.django_db
def test_a_learner_idle_on_a_step_shows_as_stuck_and_a_prediction_cannot_be_passed_by_hand(
    make_user,
):
    from lab.classroom.selectors import STUCK_AFTER_MINUTES, class_state
    from lab.curriculum.models import Progress
    from lab.curriculum.services import ProgressInvalid

    teacher, _ = make_user(role="instructor")
    learner, _ = make_user(name="lin", role="learner")
    cohort = cohort_create(instructor=teacher, name="Stuck")
    cohort_join(learner=learner, code=cohort.join_code.code)
    lesson = lesson_get(slug=LESSON)
    progress_record(user=learner, lesson=lesson, step="styles")
    Progress.objects.filter(user=learner).update(
        created_at=timezone.now() - timedelta(minutes=STUCK_AFTER_MINUTES + 2)
    )
    (row,) = class_state(viewer=teacher, cohort=cohort, lesson=lesson)["learners"]
    # The step after the one done, whatever the lesson's order is today.
    step_ids = [step.id for step in lesson.steps]
    assert row["current_step"] == step_ids[step_ids.index("styles") + 1]
    assert row["stuck"] and row["idle_minutes"] == STUCK_AFTER_MINUTES + 2

    with pytest.raises(ProgressInvalid):
        progress_record(user=learner, lesson=lesson, checkpoint="predict-wire-ratio")
    assert not Progress.objects.filter(checkpoint="predict-wire-ratio").exists()


@pytest.mark.django_db
def test_the_class_view_shows_which_learner_answered_what(make_user):
    from lab.classroom.selectors import class_state

    teacher, _ = make_user(role="instructor")
    lesson = lesson_get(slug=LESSON)
    quiz = next(checkpoint for checkpoint in lesson.checkpoints if checkpoint.kind == "quiz")
    wrong = next(index for index in range(len(quiz.choices)) if index != quiz.answer)
    cohort = cohort_create(instructor=teacher, name="Answers")
    for name, answers in (("ann", [wrong, quiz.answer]), ("ben", [wrong])):
        learner, _ = make_user(name=name, role="learner")
        cohort_join(learner=learner, code=cohort.join_code.code)
        for answer in answers:
            progress_record(user=learner, lesson=lesson, checkpoint=quiz.id, answer=answer)
    rows = {
        row["username"]: row["checkpoints"][quiz.id]
        for row in class_state(viewer=teacher, cohort=cohort, lesson=lesson)["learners"]
    }
    assert rows["ann"]["answer"] == quiz.choices[quiz.answer]
    assert rows["ann"]["answer_passed"] and rows["ann"]["attempts"] == 2 and rows["ann"]["passed"]
    assert rows["ben"]["answer"] == quiz.choices[wrong]
    assert not rows["ben"]["answer_passed"] and not rows["ben"]["passed"]
