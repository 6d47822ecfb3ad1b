"""Push changes of progress, sandboxes, runs and scenarios to the cohorts' class views.

Progress, runs and scenarios are saved with ``save()``/``create()``, so post_save
sees them. A sandbox's state moves with ``QuerySet.update()`` in the Celery tasks;
those places announce it through ``lab.sandboxes.events.sandbox_changed``,
which sends ``sandbox_announced``.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from lab.curriculum.models import Progress
from lab.curriculum.selectors import LessonNotFound, lesson_get
from lab.curriculum.services import quiz_answered
from lab.sandboxes.events import sandbox_announced
from lab.sandboxes.models import Run, RunState, Sandbox, WarmPool

from .events import cohort_changed, learner_changed
from .models import Prediction, QuizAnswer, Scenario, ScenarioTarget


log = logging.getLogger(__name__)


def _safely(function, *args) -> None:
    # The class view is an onlooker: a failure here must never fail the run,
    # the sandbox task or the page that saved the row.
    try:
        function(*args)
    except Exception:
        log.exception("classroom: %s%r failed", function.__name__, args)


def _later(function, *args) -> None:
    # After the commit, so the class view reads what was saved.
    transaction.on_commit(lambda: _safely(function, *args))


@receiver(post_save, sender=Progress)
def progress_saved(sender, instance: Progress, **kwargs) -> None:
    _later(learner_changed, instance.user_id)


def _sandbox_changed(sandbox: Sandbox) -> None:
    if sandbox.warm_pool_id is not None and sandbox.taken_at is None:
        # Still in its pool: the pool's progress on the class view of its cohort.
        _later(pool_changed, sandbox.warm_pool_id)
    else:
        _later(learner_changed, sandbox.owner_id)


def pool_changed(pool_id: int) -> None:
    cohort_id = WarmPool.objects.filter(id=pool_id).values_list("cohort_id", flat=True).first()
    if cohort_id is not None:
        cohort_changed(cohort_id)


@receiver(post_save, sender=Sandbox)
def sandbox_saved(sender, instance: Sandbox, **kwargs) -> None:
    _sandbox_changed(instance)


@receiver(post_save, sender=WarmPool)
def warm_pool_saved(sender, instance: WarmPool, **kwargs) -> None:
    _later(cohort_changed, instance.cohort_id)


@receiver(sandbox_announced)
def sandbox_state_sent(sender, sandbox: Sandbox, **kwargs) -> None:
    _sandbox_changed(sandbox)


@receiver(post_save, sender=Run)
def run_saved(sender, instance: Run, **kwargs) -> None:
    from .services import predictions_grade_run

    if instance.state == RunState.DONE:
        try:
            lesson = lesson_get(slug=instance.sandbox.lesson)
        except LessonNotFound:
            lesson = None
        if lesson is not None:
            _safely(lambda: predictions_grade_run(run=instance, lesson=lesson))
    _later(learner_changed, instance.sandbox.owner_id)


@receiver(post_save, sender=Prediction)
def prediction_saved(sender, instance: Prediction, **kwargs) -> None:
    _later(learner_changed, instance.user_id)


@receiver(post_save, sender=Scenario)
def scenario_saved(sender, instance: Scenario, **kwargs) -> None:
    _later(cohort_changed, instance.cohort_id)


@receiver(post_save, sender=ScenarioTarget)
def scenario_target_saved(sender, instance: ScenarioTarget, **kwargs) -> None:
    _later(cohort_changed, instance.scenario.cohort_id)


@receiver(quiz_answered)
def quiz_was_answered(sender, user, lesson, checkpoint, answer, passed, **kwargs) -> None:
    def keep() -> None:
        kept, created = QuizAnswer.objects.get_or_create(
            user=user,
            lesson=lesson,
            checkpoint=checkpoint,
            defaults={"answer": answer, "passed": passed},
        )
        if not created:
            kept.answer, kept.passed, kept.attempts = answer, passed, kept.attempts + 1
            kept.save(update_fields=["answer", "passed", "attempts", "updated_at"])

    _safely(keep)
    _later(learner_changed, user.pk)
