"""Every prediction and claim names a figure its experiment really reports.

Each predicted experiment runs once with its defaults in a real sandbox of its
lesson; the figure a prediction is graded on (and the one a claim is decided
on) must be in that run's result, or a learner's prediction could never be graded.
"""

import pytest
from django.conf import settings

from lab.classroom import grading
from lab.curriculum.lessons import load_all

LESSONS, _PROBLEMS = load_all(settings.LAB_LESSONS_DIR)
CASES = sorted(
    {
        (lesson.slug, experiment)
        for lesson in LESSONS
        for experiment in [
            *(item.experiment for item in lesson.checkpoints if item.kind == "predict"),
            *([lesson.claim["experiment"]] if lesson.claim.get("figure") else []),
        ]
    }
)
_results: dict[tuple[str, str], dict] = {}


def result_of(lesson_sandbox, slug: str, experiment: str) -> dict:
    if (slug, experiment) not in _results:
        _results[slug, experiment] = lesson_sandbox(slug).run(experiment)
    return _results[slug, experiment]


def test_each_of_the_four_lessons_has_two_predictions():
    by_slug = {lesson.slug: lesson for lesson in LESSONS}
    for slug in ("rest-vs-grpc", "async-messaging", "event-sourcing", "saga"):
        assert slug in by_slug, f"{slug} does not load: {[str(item) for item in _PROBLEMS]}"
        kinds = [item.kind for item in by_slug[slug].checkpoints]
        assert kinds.count("predict") >= 2, slug


@pytest.mark.parametrize(("slug", "experiment"), CASES)
def test_the_figures_a_run_is_graded_on_are_in_its_result(lesson_sandbox, slug, experiment):
    lesson = next(item for item in LESSONS if item.slug == slug)
    result = result_of(lesson_sandbox, slug, experiment)
    labels = [item["label"] for item in result.get("summary", [])]
    for checkpoint in lesson.checkpoints:
        if checkpoint.kind != "predict" or checkpoint.experiment != experiment:
            continue
        observed = grading.observed_figure(checkpoint, result)
        assert observed is not None, (checkpoint.id, checkpoint.figure, checkpoint.per, labels)
        if checkpoint.answer_type == "choice":
            assert 0 <= grading.choice_of(checkpoint, observed) < len(checkpoint.choices)
    claim = lesson.claim
    if claim.get("figure") and claim["experiment"] == experiment:
        value = grading.ratio_value(result, claim["figure"], claim.get("per", ""))
        assert value is not None, (claim, labels)
