"""Writes of the class: cohorts and join codes, scenarios pushed to a cohort, predictions."""

from __future__ import annotations

import math
import time
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from lab.curriculum.lessons import Lesson
from lab.curriculum.models import Progress
from lab.curriculum.selectors import LessonNotFound, lesson_get
from lab.sandboxes import services as sandbox_services
from lab.sandboxes.models import Run, RunState, Sandbox, SandboxState
from lab.users.models import Cohort
from lab.users.selectors import can_watch, is_instructor
from sandbox_services.runtime import client
from sandbox_services.runtime.plan import load_lab

from . import grading
from .models import CohortCode, Prediction, Scenario, ScenarioAction, ScenarioTarget

MAX_DURATION_S = 30 * 60


class ClassroomInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {' '.join(value)}" for key, value in errors.items()))


def cohort_create(*, instructor: AbstractBaseUser, name: str) -> Cohort:
    """Make a cohort taught by ``instructor``, with a join code."""
    name = (name or "").strip()
    if not is_instructor(instructor):
        raise ClassroomInvalid({"name": ["only instructors make cohorts"]})
    if not name or len(name) > 120:
        raise ClassroomInvalid({"name": ["give the cohort a name of at most 120 characters"]})
    try:
        with transaction.atomic():
            cohort = Cohort.objects.create(name=name)
            cohort.instructors.add(instructor)
            CohortCode.objects.create(cohort=cohort)
    except IntegrityError:
        raise ClassroomInvalid({"name": [f"a cohort named {name!r} exists already"]}) from None
    return cohort


def cohort_code(*, cohort: Cohort) -> str:
    """Return the cohort's join code, making one for a cohort made in the admin."""
    code, _ = CohortCode.objects.get_or_create(cohort=cohort)
    return code.code


def cohort_join(*, learner: AbstractBaseUser, code: str) -> Cohort:
    """Add ``learner`` to the cohort whose join code is ``code``."""
    normalised = "".join((code or "").split()).upper()
    found = CohortCode.objects.select_related("cohort").filter(code=normalised).first()
    if found is None:
        raise ClassroomInvalid({"code": ["no cohort has that code: check it with your instructor"]})
    found.cohort.learners.add(learner)
    # Adding to a many-to-many sends no post_save: tell the class view here.
    from .events import learner_changed

    transaction.on_commit(lambda: learner_changed(learner.pk))
    return found.cohort


def lesson_services(*, lesson: str) -> list[str]:
    """Return the names of the services a lesson's sandbox runs."""
    try:
        return [service.name for service in load_lab(lesson).services]
    except (ImportError, LookupError):
        return []


def scenario_push(
    *,
    instructor: AbstractBaseUser,
    cohort: Cohort,
    lesson: str,
    service: str,
    action: str,
    delay_ms: float | None = None,
    error_rate: float | None = None,
    duration_s: int = 120,
) -> Scenario:
    """Record a scenario for a cohort's running sandboxes of ``lesson``; a task applies it."""
    from .tasks import scenario_apply_task

    errors: dict[str, list[str]] = {}
    try:
        lesson_get(slug=lesson)
    except LessonNotFound:
        errors["lesson"] = [f"no lesson {lesson!r}"]
    services = lesson_services(lesson=lesson)
    if service not in services:
        errors["service"] = [f"no service {service!r}; this lesson has: {', '.join(services)}"]
    if action not in ScenarioAction.values:
        errors["action"] = [f"must be one of: {', '.join(ScenarioAction.values)}"]
    if action == ScenarioAction.DELAY and not _number_between(
        delay_ms, 1, sandbox_services.MAX_DELAY_MS
    ):
        errors["delay_ms"] = [f"milliseconds between 1 and {sandbox_services.MAX_DELAY_MS}"]
    if action == ScenarioAction.ERROR and not _number_between(error_rate, 0.01, 1):
        errors["error_rate"] = ["a fraction of calls between 0.01 and 1"]
    if not isinstance(duration_s, int) or not 10 <= duration_s <= MAX_DURATION_S:
        errors["duration_s"] = [f"seconds between 10 and {MAX_DURATION_S}"]
    if errors:
        raise ClassroomInvalid(errors)
    with transaction.atomic():
        scenario = Scenario.objects.create(
            cohort=cohort,
            created_by=instructor,
            lesson=lesson,
            service=service,
            action=action,
            delay_ms=float(delay_ms or 0),
            error_rate=float(error_rate or 0),
            duration_s=duration_s,
        )
        for sandbox in Sandbox.objects.filter(
            owner__in=cohort.learners.all(), lesson=lesson, state=SandboxState.RUNNING
        ):
            # The same rule as watching: only learners this instructor teaches.
            if can_watch(instructor, sandbox.owner_id):
                ScenarioTarget.objects.create(
                    scenario=scenario, learner_id=sandbox.owner_id, sandbox=sandbox
                )
        transaction.on_commit(lambda: scenario_apply_task.delay(scenario.id))
    return scenario


def scenario_apply(*, scenario: Scenario) -> None:
    """Apply the scenario's fault to each target sandbox through the sandbox fault path."""
    scenario.applied_ns = time.time_ns()
    scenario.ends_at = timezone.now() + timedelta(seconds=scenario.duration_s)
    scenario.save(update_fields=["applied_ns", "ends_at"])
    for target in scenario.targets.select_related("sandbox"):
        try:
            sandbox_services.fault_apply(
                sandbox=target.sandbox,
                service=scenario.service,
                action=scenario.action,
                delay_ms=scenario.delay_ms if scenario.action == ScenarioAction.DELAY else None,
                error_rate=scenario.error_rate if scenario.action == ScenarioAction.ERROR else None,
            )
            target.applied, target.error = True, ""
        except (sandbox_services.SandboxNotRunning, sandbox_services.InputInvalid) as error:
            target.applied, target.error = False, str(error)
        target.save(update_fields=["applied", "error"])


def scenario_confirm(*, scenario: Scenario) -> int:
    """Read each applied target's new spans for the fault's effect; return how many are confirmed."""
    confirmed = 0
    for target in scenario.targets.filter(applied=True).select_related("sandbox"):
        if target.confirmed_at is not None:
            confirmed += 1
            continue
        spans = client.replay(target.sandbox_id, since=target.last_seq)
        if spans:
            target.last_seq = max(span.get("seq", 0) for span in spans)
        evidence = next(
            (text for text in (_evidence(scenario, span) for span in spans) if text is not None),
            None,
        )
        if evidence is not None:
            target.confirmed_at, target.evidence = timezone.now(), evidence
            confirmed += 1
        target.save(update_fields=["last_seq", "confirmed_at", "evidence"])
    return confirmed


def _evidence(scenario: Scenario, span: dict) -> str | None:
    """Return what in ``span`` shows the scenario took effect, or None."""
    start, end = span.get("start_ns") or 0, span.get("end_ns") or 0
    if scenario.applied_ns is None or start < scenario.applied_ns:
        return None
    service, peer = span.get("service"), span.get("peer")
    name = span.get("name", "")
    if scenario.action == ScenarioAction.DELAY:
        took_ms = (end - start) / 1e6
        if service == scenario.service and span.get("kind") == "server":
            if took_ms >= 0.9 * scenario.delay_ms:
                return f"{scenario.service} answered {name} in {took_ms:.0f} ms"
        return None
    if span.get("status") != "error":
        return None
    if scenario.action == ScenarioAction.ERROR and service == scenario.service:
        return f"{scenario.service} failed {name}"
    if peer == scenario.service and service != scenario.service:
        return f"{service}'s call {name} to {scenario.service} failed"
    return None


def scenario_reset(*, scenario: Scenario) -> Scenario:
    """End a scenario: clear the fault (or start the service again) in each target sandbox."""
    with transaction.atomic():
        ended = Scenario.objects.filter(id=scenario.id, ended_at__isnull=True).update(
            ended_at=timezone.now()
        )
    scenario.refresh_from_db()
    if not ended:
        return scenario
    undo = "start" if scenario.action == ScenarioAction.STOP else "clear"
    for target in scenario.targets.filter(applied=True).select_related("sandbox"):
        try:
            sandbox_services.fault_apply(
                sandbox=target.sandbox, service=scenario.service, action=undo
            )
            target.cleared = True
        except (sandbox_services.SandboxNotRunning, sandbox_services.InputInvalid) as error:
            # A sandbox that stopped meanwhile has nothing left to clear.
            target.error = str(error)
        target.save(update_fields=["cleared", "error"])
    # Saving the scenario after its targets tells the class view once, with all of them.
    scenario.save(update_fields=["ended_at"])
    return scenario


def prediction_record(
    *, user: AbstractBaseUser, lesson: Lesson, checkpoint_id: str, value: object
) -> Prediction:
    """Record (or change, until it is graded) a learner's prediction."""
    checkpoint = lesson.checkpoint(checkpoint_id)
    if checkpoint is None or checkpoint.kind != "predict":
        raise ClassroomInvalid({"checkpoint": [f"no prediction {checkpoint_id!r} in this lesson"]})
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ClassroomInvalid({"value": ["give a number"]})
    if checkpoint.answer_type == "choice" and (
        number != int(number) or not 0 <= number < len(checkpoint.choices)
    ):
        raise ClassroomInvalid({"value": ["pick one of the choices"]})
    existing = Prediction.objects.filter(
        user=user, lesson=lesson.slug, checkpoint=checkpoint.id
    ).first()
    if existing is not None and existing.is_graded:
        raise ClassroomInvalid({"value": ["this prediction was graded already; it stays as made"]})
    prediction, _ = Prediction.objects.update_or_create(
        user=user, lesson=lesson.slug, checkpoint=checkpoint.id, defaults={"value": number}
    )
    return prediction


def predictions_grade_run(*, run: Run, lesson: Lesson) -> list[Prediction]:
    """Grade the owner's open predictions of this run's experiment against its result.

    Only a run asked for after the prediction grades it: the answer came first.
    """
    if run.state != RunState.DONE:
        return []
    checkpoints = {
        checkpoint.id: checkpoint
        for checkpoint in lesson.checkpoints
        if checkpoint.kind == "predict" and checkpoint.experiment == run.experiment
    }
    if not checkpoints:
        return []
    graded = []
    open_predictions = Prediction.objects.filter(
        user_id=run.sandbox.owner_id,
        lesson=lesson.slug,
        checkpoint__in=list(checkpoints),
        graded_at__isnull=True,
        updated_at__lte=run.created_at,
    )
    for prediction in open_predictions:
        checkpoint = checkpoints[prediction.checkpoint]
        observed = grading.observed_figure(checkpoint, run.result)
        if observed is None:
            continue  # This run did not measure the figure (another mode, say).
        prediction.run, prediction.observed = run, observed
        prediction.observed_choice = (
            grading.choice_of(checkpoint, observed) if checkpoint.answer_type == "choice" else None
        )
        prediction.correct = grading.is_correct(checkpoint, prediction.value, observed)
        prediction.graded_at = timezone.now()
        prediction.save(
            update_fields=["run", "observed", "observed_choice", "correct", "graded_at"]
        )
        # Predicting, then observing, is the checkpoint, whether the guess was right.
        Progress.objects.get_or_create(
            user_id=prediction.user_id,
            lesson=lesson.slug,
            step=checkpoint.step,
            checkpoint=checkpoint.id,
        )
        graded.append(prediction)
    return graded


def _number_between(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )
