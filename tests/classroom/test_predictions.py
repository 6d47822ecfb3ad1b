"""The predict checkpoint's partial: recording a prediction and looking again for its grade."""

import re

import pytest
from django.test import Client


@pytest.mark.django_db
def test_a_prediction_refreshed_before_its_grade_looks_again_a_few_times(make_user):
    learner, _ = make_user(password="a long pass phrase 9")
    client = Client()
    assert client.login(username=learner.username, password="a long pass phrase 9")
    url = "/class/predictions/rest-vs-grpc/predict-wire-ratio/"
    recorded = client.post(url, {"value": "1.5"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Recorded: <strong>1.5 x</strong>" in recorded
    assert "load delay" not in recorded, "nothing to look for before a run"
    refreshed = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert f"{url}?attempt=1" in refreshed and "load delay:1s" in refreshed
    last = client.get(f"{url}?attempt=3", HTTP_HX_REQUEST="true").content.decode()
    assert "load delay" not in last
    refused = client.post(url, {"value": "lots"}, HTTP_HX_REQUEST="true").content.decode()
    assert "give a number" in refused


def test_a_broken_prediction_is_a_lesson_problem_naming_its_field(tmp_path):
    from django.conf import settings

    from lab.curriculum.lessons import LessonInvalid, load_lesson

    text = (settings.LAB_LESSONS_DIR / "rest-vs-grpc" / "lesson.md").read_text()
    # Break the first prediction with a tolerance, the first with bins, and the minutes,
    # whatever the lesson's current values are.
    broken = re.sub(r"(?m)^ +tolerance: .*\n", "", text, count=1)
    broken = re.sub(r"(?m)^( +bins: )\[.*\]$", r"\1[2.0, 1.0]", broken, count=1)
    broken = re.sub(r"(?m)^minutes: .*$", "minutes: soon", broken, count=1)
    assert broken.count("kind: predict") >= 2 and broken != text
    folder = tmp_path / "rest-vs-grpc"
    folder.mkdir()
    (folder / "lesson.md").write_text(broken)
    with pytest.raises(LessonInvalid) as caught:
        load_lesson(folder / "lesson.md")
    fields = {problem.field for problem in caught.value.problems}
    assert "minutes" in fields
    assert any(field.endswith(".tolerance") for field in fields), fields
    assert any(field.endswith(".bins") for field in fields), fields
