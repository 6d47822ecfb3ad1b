"""Lesson files are validated: every problem names its file and field."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks

from lab.curriculum.lessons import LessonInvalid, load_all, load_lesson
from lab.curriculum.params import ParamsInvalid, params_clean

GOOD_FRONT = """---
title: Demo
summary: A demo lesson.
steps:
  - {id: one, title: First}
experiments:
  - name: ping
    title: Ping
    step: one
    parameters:
      - {name: count, type: int, default: 3, min: 1, max: 10}
      - {name: ratio, type: float, default: 0.5, min: 0.0, max: 1.0}
      - {name: mode, type: choice, default: a, choices: [a, b]}
      - {name: traced, type: bool, default: true}
checkpoints:
  - {id: quiz, step: one, kind: quiz, question: "Which?", choices: ["x", "y"], answer: 1}
---
"""


def write_lesson(root: Path, slug: str, text: str) -> Path:
    path = root / slug / "lesson.md"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(LessonInvalid) as caught:
        load_lesson(path)
    return [f"{problem.field}: {problem.message}" for problem in caught.value.problems]


def test_a_lesson_without_its_lab_package_is_reported(tmp_path):
    path = write_lesson(tmp_path, "no-such-lab", GOOD_FRONT + "<!-- step: one -->\nText\n")
    problems = problems_of(path)
    assert any(
        problem.startswith("lab: cannot import sandbox_services.no_such_lab")
        for problem in problems
    )


def test_bad_fields_are_named(tmp_path):
    text = (
        GOOD_FRONT.replace("default: 3, min: 1", "default: 30, min: 1").replace(
            "kind: quiz", "kind: riddle"
        )
        + "<!-- step: two -->\n<!-- experiment: pong -->\n"
    )
    problems = problems_of(write_lesson(tmp_path, "no-such-lab", text))
    joined = "\n".join(problems)
    assert "experiments[0].parameters[0].default: 30 is outside [1, 10]" in joined
    assert "checkpoints[0].kind" in joined
    assert "marker names an undeclared step 'two'" in joined
    assert "no '<!-- step: one -->' marker" in joined
    assert "undeclared experiment 'pong'" in joined


def test_missing_front_matter_is_reported(tmp_path):
    problems = problems_of(write_lesson(tmp_path, "plain", "# Just text\n"))
    assert problems == ["front matter: missing '---' YAML block"]


def test_the_shipped_lessons_are_valid():
    lessons, problems = load_all(settings.LAB_LESSONS_DIR)
    assert problems == []
    assert "rest-vs-grpc" in {lesson.slug for lesson in lessons}


def test_manage_check_names_the_broken_file(tmp_path, settings):
    path = write_lesson(tmp_path, "broken", "---\ntitle: [unclosed\n---\n")
    settings.LAB_LESSONS_DIR = tmp_path
    errors = checks.run_checks(tags=["lessons"])
    assert errors and errors[0].obj == str(path)
    assert "invalid YAML" in errors[0].msg


def test_parameters_are_bounded_and_typed():
    lesson_text = GOOD_FRONT
    experiment = _experiment_from(lesson_text)
    assert params_clean(experiment, {}) == {"count": 3, "ratio": 0.5, "mode": "a", "traced": True}
    with pytest.raises(ParamsInvalid) as caught:
        params_clean(
            experiment, {"count": 11, "ratio": "x", "mode": "c", "traced": "yes", "extra": 1}
        )
    errors = caught.value.errors
    assert errors["count"] == ["must be between 1 and 10"]
    assert errors["ratio"] == ["must be a number (float)"]
    assert "must be one of" in errors["mode"][0]
    assert errors["traced"] == ["must be true or false"]
    assert "unknown parameter" in errors["extra"][0]
    with pytest.raises(ParamsInvalid):
        params_clean(experiment, {"count": 2.5})
    with pytest.raises(ParamsInvalid):
        params_clean(experiment, {"ratio": float("nan")})


def _experiment_from(front: str):
    import yaml

    from lab.curriculum.lessons import _experiment

    meta = yaml.safe_load(front.strip().strip("-"))
    problems = []
    experiment = _experiment(
        meta["experiments"][0], "experiments[0]", {"one": "First"}, lambda *a: problems.append(a)
    )
    assert problems == []
    return experiment
