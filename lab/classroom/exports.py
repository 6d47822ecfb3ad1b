"""The cohort's progress as CSV rows: one per learner, lesson and step or checkpoint."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from lab.curriculum.lessons import Checkpoint
from lab.curriculum.models import Progress
from lab.curriculum.selectors import lesson_list
from lab.users.models import Cohort

from .models import Prediction, QuizAnswer
from .selectors import iso, learners_visible, prediction_text

CSV_COLUMNS = [
    "cohort",
    "learner",
    "lesson",
    "kind",
    "item",
    "title",
    "status",
    "at",
    "answer",
    "predicted",
    "observed",
    "prediction_correct",
]


def progress_rows(*, viewer: AbstractBaseUser, cohort: Cohort) -> list[list[str]]:
    """Return one row per learner, lesson and step or checkpoint, for the CSV export."""
    learners = learners_visible(viewer=viewer, cohort=cohort)
    ids = [learner.pk for learner in learners]
    done = {
        (row["user_id"], row["lesson"], row["step"], row["checkpoint"]): row["created_at"]
        for row in Progress.objects.filter(user_id__in=ids).values(
            "user_id", "lesson", "step", "checkpoint", "created_at"
        )
    }
    predictions = {
        (prediction.user_id, prediction.lesson, prediction.checkpoint): prediction
        for prediction in Prediction.objects.filter(user_id__in=ids)
    }
    answers = {
        (answer.user_id, answer.lesson, answer.checkpoint): answer
        for answer in QuizAnswer.objects.filter(user_id__in=ids)
    }
    rows = []
    for learner in learners:
        for lesson in lesson_list():
            for step in lesson.steps:
                at = done.get((learner.pk, lesson.slug, step.id, ""))
                rows.append(
                    [
                        cohort.name,
                        learner.username,
                        lesson.slug,
                        "step",
                        step.id,
                        step.title,
                        "done" if at else "",
                        iso(at) or "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
            for checkpoint in lesson.checkpoints:
                at = done.get((learner.pk, lesson.slug, checkpoint.step, checkpoint.id))
                prediction = predictions.get((learner.pk, lesson.slug, checkpoint.id))
                predicted = observed = correct = ""
                if prediction is not None:
                    predicted = prediction_text(checkpoint, prediction.value)
                    observed = prediction_text(
                        checkpoint,
                        prediction.observed_choice
                        if checkpoint.answer_type == "choice"
                        else prediction.observed,
                    )
                    correct = "" if prediction.correct is None else str(prediction.correct).lower()
                rows.append(
                    [
                        cohort.name,
                        learner.username,
                        lesson.slug,
                        checkpoint.kind,
                        checkpoint.id,
                        checkpoint.question or checkpoint.experiment,
                        "passed" if at else "",
                        iso(at) or "",
                        _answer_text(
                            checkpoint, answers.get((learner.pk, lesson.slug, checkpoint.id))
                        ),
                        predicted,
                        observed,
                        correct,
                    ]
                )
    return rows


def _answer_text(checkpoint: Checkpoint, answer: QuizAnswer | None) -> str:
    if answer is None or not 0 <= answer.answer < len(checkpoint.choices):
        return ""
    return checkpoint.choices[answer.answer]
