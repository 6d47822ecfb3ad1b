"""Lesson files are validated: every problem names its file and field.

An experiment's parameters are declared once, in the lesson's Python (its
LAB's ExperimentSpecs), and checked by one function, ``runtime.params.validate``.
"""

import json
import math
from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.test import APIClient

from lab.curriculum.lessons import LessonInvalid, load_all, load_lesson
from sandbox_services.runtime.params import Param, ParameterError, validate
from sandbox_services.runtime.plan import load_lab

GOOD_FRONT = """---
title: Demo
summary: A demo lesson.
steps:
  - {id: one, title: First}
experiments:
  - name: ping
    title: Ping
    step: one
checkpoints:
  - {id: quiz, step: one, kind: quiz, question: "Which?", choices: ["x", "y"], answer: 1}
---
"""

DEMO = (
    Param("count", "int", 3, 1, 10),
    Param("ratio", "float", 0.5, 0.0, 1.0),
    Param("mode", "choice", "a", choices=("a", "b")),
    Param("traced", "bool", True),
)


def write_lesson(root: Path, slug: str, text: str) -> Path:
    path = root / slug / "lesson.md"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(LessonInvalid) as caught:
        load_lesson(path)
    return [f"{problem.field}: {problem.message}" for problem in caught.value.problems]


def lesson_for_lab(slug: str, names: list[str] | None = None, extra: str = "") -> str:
    """Return a valid lesson.md for a lab: one step, and ``names`` (else every LAB experiment).

    ``extra`` is added to the first experiment's entry.
    """
    if names is None:
        names = [experiment.name for experiment in load_lab(slug).experiments]
    entries = "".join(f"  - name: {name}\n    title: {name}\n    step: one\n" for name in names)
    entries = entries.replace("    step: one\n", "    step: one\n" + extra, 1)
    return (
        "---\ntitle: Demo\nsummary: A demo lesson.\nsteps:\n  - {id: one, title: First}\n"
        f"experiments:\n{entries}---\n<!-- step: one -->\nText\n"
    )


def test_a_lesson_without_its_lab_package_is_reported(tmp_path):
    path = write_lesson(tmp_path, "no-such-lab", GOOD_FRONT + "<!-- step: one -->\nText\n")
    problems = problems_of(path)
    assert any(
        problem.startswith("lab: cannot import sandbox_services.no_such_lab")
        for problem in problems
    )


def test_bad_fields_are_named(tmp_path):
    text = (
        GOOD_FRONT.replace("kind: quiz", "kind: riddle")
        + "<!-- step: two -->\n<!-- experiment: pong -->\n"
    )
    problems = problems_of(write_lesson(tmp_path, "no-such-lab", text))
    joined = "\n".join(problems)
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


def test_manage_check_fails_for_an_experiment_the_lab_lacks_naming_file_and_experiment(
    tmp_path, settings
):
    names = [experiment.name for experiment in load_lab("rest-vs-grpc").experiments]
    path = write_lesson(tmp_path, "rest-vs-grpc", lesson_for_lab("rest-vs-grpc", names))
    settings.LAB_LESSONS_DIR = tmp_path
    call_command("check")  # the lesson as its LAB has it passes
    path.write_text(lesson_for_lab("rest-vs-grpc", ["teleport", *names]))
    with pytest.raises(SystemCheckError) as caught:
        call_command("check")
    message = str(caught.value)
    assert str(path) in message
    assert "'teleport' has no ExperimentSpec in sandbox_services.rest_vs_grpc.LAB" in message


def test_manage_check_fails_for_a_lab_experiment_the_lesson_does_not_list(tmp_path, settings):
    names = [e.name for e in load_lab("rest-vs-grpc").experiments if e.name != "contract"]
    path = write_lesson(tmp_path, "rest-vs-grpc", lesson_for_lab("rest-vs-grpc", names))
    settings.LAB_LESSONS_DIR = tmp_path
    errors = checks.run_checks(tags=["lessons"])
    assert [(error.obj, error.msg) for error in errors] == [
        (
            str(path),
            "experiments: sandbox_services.rest_vs_grpc.LAB has experiment 'contract', "
            "which this file does not list",
        )
    ]


def test_parameters_in_the_front_matter_are_refused_with_where_they_belong(tmp_path):
    front = lesson_for_lab(
        "rest-vs-grpc", extra="    parameters:\n      - {name: items, type: int, default: 5}\n"
    )
    problems = problems_of(write_lesson(tmp_path, "rest-vs-grpc", front))
    assert problems == [
        "experiments[0].parameters: are declared once, in Python: remove them here; "
        "they belong in sandbox_services/rest_vs_grpc/knobs.py"
    ]


def test_the_lessons_take_each_experiments_parameters_from_its_lab():
    lessons, _problems = load_all(settings.LAB_LESSONS_DIR)
    for lesson in lessons:
        lab = load_lab(lesson.slug)
        assert [e.name for e in lesson.experiments] == [e.name for e in lab.experiments]
        for experiment in lesson.experiments:
            assert experiment.parameters is lab.experiment(experiment.name).parameters
    rest = next(lesson for lesson in lessons if lesson.slug == "rest-vs-grpc")
    assert [p.name for p in rest.experiment("load").parameters] == [
        "concurrency",
        "duration_s",
        "items",
        "sample_ratio",
    ]


def test_the_api_lists_exactly_the_python_declaration(db):
    listed = APIClient().get("/api/lessons/").json()
    assert {lesson["slug"] for lesson in listed} >= {
        "rest-vs-grpc",
        "async-messaging",
        "event-sourcing",
        "saga",
    }
    for lesson in listed:
        lab = load_lab(lesson["slug"])
        assert [e["name"] for e in lesson["experiments"]] == [e.name for e in lab.experiments]
        for experiment in lesson["experiments"]:
            declared = lab.experiment(experiment["name"]).parameters
            assert experiment["parameters"] == [
                {
                    "name": p.name,
                    "type": p.type,
                    "default": p.default,
                    "min": p.min,
                    "max": p.max,
                    "choices": list(p.choices),
                    "help": p.help,
                }
                for p in declared
            ], (lesson["slug"], experiment["name"])
    # The lesson page's form is built from the same lesson data.
    page = APIClient().get("/api/lessons/async-messaging/").json()
    sync = next(e for e in page["experiments"] if e["name"] == "sync-vs-async")
    assert sync["parameters"][1]["help"] == "What happens to email before the last two orders"


def test_validate_fills_defaults_and_keeps_types():
    assert validate(DEMO, {}) == {"count": 3, "ratio": 0.5, "mode": "a", "traced": True}
    assert validate(DEMO, None) == validate(DEMO, {})
    cleaned = validate(DEMO, {"count": 10, "ratio": 1, "mode": "b", "traced": False})
    assert cleaned == {"count": 10, "ratio": 1.0, "mode": "b", "traced": False}
    assert type(cleaned["ratio"]) is float
    assert validate(DEMO, {"count": 4.0})["count"] == 4  # a whole JSON number is an int


def test_validate_names_every_bad_field_with_its_bound():
    with pytest.raises(ParameterError) as caught:
        validate(
            DEMO,
            {"count": 11, "ratio": "0.5", "mode": "c", "traced": "yes", "extra": 1},
        )
    errors = caught.value.errors
    assert errors["count"] == ["must be between 1 and 10"]
    assert errors["ratio"] == ["must be a number (float), not a string"]
    assert errors["mode"] == ["must be one of: a, b"]
    assert errors["traced"] == ["must be true or false"]
    assert errors["extra"] == [
        "unknown parameter; this experiment expected one of: count, ratio, mode, traced"
    ]


@pytest.mark.parametrize(
    ("raw", "name", "message"),
    [
        ('{"count": 1e400}', "count", "must be a finite number between 1 and 10"),
        ('{"count": -1e400}', "count", "must be a finite number between 1 and 10"),
        ('{"ratio": 1e400}', "ratio", "must be a finite number between 0.0 and 1.0"),
        ('{"count": ' + "9" * 400 + "}", "count", "must be between 1 and 10"),
        ('{"ratio": ' + "9" * 400 + "}", "ratio", "must be between 0.0 and 1.0"),
        ('{"ratio": -' + "9" * 400 + "}", "ratio", "must be between 0.0 and 1.0"),
        ('{"count": NaN}', "count", "must be a finite number between 1 and 10"),
        ('{"count": true}', "count", "must be a number (int), not true or false"),
        ('{"ratio": false}', "ratio", "must be a number (float), not true or false"),
        ('{"count": "10"}', "count", "must be a number (int), not a string"),
        ('{"count": null}', "count", "must be a number (int), not null"),
        ('{"count": [3]}', "count", "must be a number (int), not a list"),
        ('{"count": 2.5}', "count", "must be a whole number"),
        ('{"traced": 1}', "traced", "must be true or false"),
        ('{"traced": "true"}', "traced", "must be true or false"),
        ('{"mode": ["a"]}', "mode", "must be one of: a, b"),
    ],
)
def test_validate_is_strict_about_json_values(raw, name, message):
    with pytest.raises(ParameterError) as caught:
        validate(DEMO, json.loads(raw))
    assert caught.value.errors == {name: [message]}
    assert caught.value.name == name and str(caught.value) == f"{name}: {message}"


@pytest.mark.parametrize("raw", [[], [1], "x", 3])
def test_validate_refuses_params_that_are_not_an_object(raw):
    with pytest.raises(ParameterError) as caught:
        validate(DEMO, raw)
    assert caught.value.errors == {"params": ["must be an object of parameter names to values"]}


def test_an_experiment_without_parameters_refuses_any():
    assert validate((), {}) == {}
    with pytest.raises(ParameterError) as caught:
        validate((), {"items": 1})
    assert caught.value.errors == {"items": ["unknown parameter; this experiment takes none"]}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("n", "int", 30, 1, 10), "n: default 30 must be between 1 and 10"),
        (("n", "int", 3), "n: a number parameter needs min <= max"),
        (("n", "int", 3, 10, 1), "n: a number parameter needs min <= max"),
        (("n", "int", 3.0, 1, 10), "n: an int parameter needs an int default and bounds"),
        (("n", "float", math.inf, 0.0, 1.0), "n: default inf must be a finite number"),
        (("m", "choice", "c"), "m: a choice parameter needs choices (strings)"),
        (("t", "bool", 1), "t: default 1 must be true or false"),
        (("x", "text", ""), "x: type must be one of int, float, choice, bool"),
    ],
)
def test_a_declaration_that_breaks_its_own_rules_fails_at_import(arguments, message):
    with pytest.raises(ValueError) as caught:
        Param(*arguments)
    assert str(caught.value).startswith(message)


def test_threads_that_ask_for_the_lessons_at_once_read_them_once(monkeypatch, settings):
    # A fresh Celery worker's eight threads ending runs at once each parsed every
    # lesson (about half a CPU second each) before the first had cached them.
    import threading

    from lab.curriculum import selectors

    settings.DEBUG = False
    monkeypatch.setattr(selectors, "_cache", {})
    reads = []

    def counted(directory):
        reads.append(directory)
        return load_all(directory)

    monkeypatch.setattr(selectors, "load_all", counted)
    start = threading.Barrier(8)

    def ask():
        start.wait()
        selectors.lesson_get(slug="rest-vs-grpc")

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
