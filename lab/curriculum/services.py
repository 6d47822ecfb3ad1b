"""Writes of progress: a step read, a quiz answered, an experiment run."""

from django.contrib.auth.models import AbstractBaseUser
from django.dispatch import Signal

from .lessons import Lesson
from .models import Progress

# Sent after a quiz was answered, right or wrong (user, lesson slug, checkpoint id,
# answer, passed): the class view keeps each learner's latest answer.
quiz_answered = Signal()


class ProgressInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(value)}" for key, value in errors.items()))


def progress_record(
    *,
    user: AbstractBaseUser,
    lesson: Lesson,
    step: str | None = None,
    checkpoint: str | None = None,
    answer: int | None = None,
) -> dict:
    """Record a finished step or an attempted checkpoint; return {"passed": bool, "explanation"}."""
    if checkpoint:
        found = lesson.checkpoint(checkpoint)
        if found is None:
            raise ProgressInvalid({"checkpoint": [f"no checkpoint {checkpoint!r} in this lesson"]})
        if found.kind == "quiz":
            if not isinstance(answer, int) or isinstance(answer, bool):
                raise ProgressInvalid({"answer": ["must be the index of a choice"]})
            if not 0 <= answer < len(found.choices):
                raise ProgressInvalid(
                    {"answer": [f"must be between 0 and {len(found.choices) - 1}"]}
                )
            passed = answer == found.answer
            quiz_answered.send(
                sender=Progress,
                user=user,
                lesson=lesson.slug,
                checkpoint=found.id,
                answer=answer,
                passed=passed,
            )
        elif found.kind in ("run", "predict"):
            # A run checkpoint passes only when a run really finished (see
            # progress_record_run), a prediction when a run graded it (the
            # classroom app), never because the browser says so.
            raise ProgressInvalid({"checkpoint": ["passes when the experiment's run finishes"]})
        else:
            passed = True
        if passed:
            Progress.objects.get_or_create(
                user=user, lesson=lesson.slug, step=found.step, checkpoint=found.id
            )
        return {"passed": passed, "explanation": found.explanation}
    if not step or lesson.step(step) is None:
        raise ProgressInvalid({"step": [f"no step {step!r} in this lesson"]})
    Progress.objects.get_or_create(user=user, lesson=lesson.slug, step=step, checkpoint="")
    return {"passed": True, "explanation": ""}


def progress_record_run(*, user: AbstractBaseUser, lesson: Lesson, experiment: str) -> None:
    """Pass every run checkpoint of ``experiment`` after one of its runs finished."""
    for checkpoint in lesson.checkpoints:
        if checkpoint.kind == "run" and checkpoint.experiment == experiment:
            Progress.objects.get_or_create(
                user=user, lesson=lesson.slug, step=checkpoint.step, checkpoint=checkpoint.id
            )
