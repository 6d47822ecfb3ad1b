"""Reads of the class: an instructor's cohorts, the live class state, results, the CSV rows.

Every learner an instructor sees passes ``lab.users.selectors.can_watch``, the
one rule of who may see whose work.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from lab.curriculum.lessons import Checkpoint, Lesson
from lab.curriculum.models import Progress
from lab.curriculum.selectors import LessonNotFound, lesson_get, lesson_list
from lab.sandboxes.models import ACTIVE_STATES, Run, RunState, Sandbox
from lab.sandboxes.selectors import warm_pools_taught
from lab.sandboxes.serializers import WarmPoolOutput
from lab.users.models import Cohort
from lab.users.selectors import can_watch, is_instructor

from . import grading
from .models import CohortCode, Prediction, QuizAnswer, Scenario

User = get_user_model()

# A learner on the same step with nothing new for this long is shown as stuck.
STUCK_AFTER_MINUTES = 5
# Error rate over a learner's most recent runs in the lesson.
ERROR_RATE_RUNS = 20


def cohorts_taught(*, instructor: AbstractBaseUser | AnonymousUser) -> QuerySet[Cohort]:
    """Return the cohorts ``instructor`` teaches (every cohort for a superuser)."""
    if not instructor.is_authenticated or not is_instructor(instructor):
        return Cohort.objects.none()
    cohorts = (
        Cohort.objects.all()
        if instructor.is_superuser
        else Cohort.objects.filter(instructors=instructor)
    )
    return cohorts.order_by("name")


def cohorts_joined(*, learner: AbstractBaseUser | AnonymousUser) -> QuerySet[Cohort]:
    if not learner.is_authenticated:
        return Cohort.objects.none()
    return Cohort.objects.filter(learners=learner).order_by("name")


def cohort_get_taught(
    *, instructor: AbstractBaseUser | AnonymousUser, cohort_id: int
) -> Cohort | None:
    """Return the cohort if ``instructor`` teaches it, else None (as if absent)."""
    return cohorts_taught(instructor=instructor).filter(id=cohort_id).first()


def join_code(*, cohort: Cohort) -> str | None:
    found = CohortCode.objects.filter(cohort=cohort).first()
    return found.code if found else None


def learners_visible(*, viewer: AbstractBaseUser, cohort: Cohort) -> list[AbstractBaseUser]:
    """Return the cohort's learners ``viewer`` may watch, by name."""
    return [
        learner for learner in cohort.learners.order_by("username") if can_watch(viewer, learner.pk)
    ]


def lesson_or_first(slug: str | None) -> Lesson | None:
    if slug:
        try:
            return lesson_get(slug=slug)
        except LessonNotFound:
            pass
    lessons = lesson_list()
    return lessons[0] if lessons else None


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def class_state(*, viewer: AbstractBaseUser, cohort: Cohort, lesson: Lesson) -> dict:
    """Return the live class view of one lesson as one JSON-ready dict."""
    now = timezone.now()
    learners = learners_visible(viewer=viewer, cohort=cohort)
    ids = [learner.pk for learner in learners]
    progress = list(
        Progress.objects.filter(user_id__in=ids, lesson=lesson.slug).values(
            "user_id", "step", "checkpoint", "created_at"
        )
    )
    # Each learner's sandbox to show: the active one (whatever its lesson), else
    # their newest of this lesson. Oldest first, so a later one replaces it.
    sandboxes: dict[int, Sandbox] = {}
    for sandbox in Sandbox.objects.filter(owner_id__in=ids).order_by("created_at"):
        shown = sandboxes.get(sandbox.owner_id)
        if (
            shown is not None
            and shown.state in ACTIVE_STATES
            and sandbox.state not in ACTIVE_STATES
        ):
            continue
        if sandbox.state in ACTIVE_STATES or sandbox.lesson == lesson.slug:
            sandboxes[sandbox.owner_id] = sandbox
    runs_by_user: dict[int, list[Run]] = {}
    for run in (
        Run.objects.filter(sandbox__owner_id__in=ids, sandbox__lesson=lesson.slug)
        .select_related("sandbox")
        .order_by("-created_at")
    ):
        runs_by_user.setdefault(run.sandbox.owner_id, []).append(run)
    predictions = _predictions(ids, lesson)
    answers = {
        (answer.user_id, answer.checkpoint): answer
        for answer in QuizAnswer.objects.filter(user_id__in=ids, lesson=lesson.slug)
    }
    rows = []
    for learner in learners:
        mine = [row for row in progress if row["user_id"] == learner.pk]
        runs = runs_by_user.get(learner.pk, [])
        rows.append(
            _learner_row(
                learner, lesson, mine, sandboxes.get(learner.pk), runs, predictions, answers, now
            )
        )
    return {
        "cohort": {"id": cohort.id, "name": cohort.name, "code": join_code(cohort=cohort)},
        "lesson": {
            "slug": lesson.slug,
            "title": lesson.title,
            "steps": [{"id": step.id, "title": step.title} for step in lesson.steps],
            "checkpoints": [_checkpoint_head(checkpoint) for checkpoint in lesson.checkpoints],
        },
        "lessons": [{"slug": item.slug, "title": item.title} for item in lesson_list()],
        "stuck_after_minutes": STUCK_AFTER_MINUTES,
        "learners": rows,
        "scenarios": scenarios_state(cohort=cohort, learners=learners),
        "warm_pool": warm_pool_state(viewer=viewer, cohort=cohort, lesson=lesson.slug),
        "results": class_results(
            lesson=lesson, runs_by_user=runs_by_user, learners=learners, predictions=predictions
        ),
    }


def warm_pool_state(*, viewer: AbstractBaseUser, cohort: Cohort, lesson: str) -> dict | None:
    """Return the cohort's live warm pool of ``lesson`` and where its sandboxes are, if any."""
    pool = (
        warm_pools_taught(user=viewer)
        .filter(cohort=cohort, lesson=lesson, until__gt=timezone.now())
        .first()
    )
    return dict(WarmPoolOutput(pool).data) if pool is not None else None  # the API's shape


def _checkpoint_head(checkpoint: Checkpoint) -> dict:
    head = {
        "id": checkpoint.id,
        "step": checkpoint.step,
        "kind": checkpoint.kind,
        "question": checkpoint.question or checkpoint.experiment or checkpoint.id,
        "experiment": checkpoint.experiment,
        "choices": list(checkpoint.choices),
    }
    if checkpoint.kind == "predict":
        head.update(
            answer_type=checkpoint.answer_type,
            figure=_figure_name(checkpoint),
            unit=checkpoint.unit,
        )
    return head


def _figure_name(checkpoint: Checkpoint) -> str:
    return f"{checkpoint.figure} / {checkpoint.per}" if checkpoint.per else checkpoint.figure


def _predictions(ids: list[int], lesson: Lesson) -> dict[tuple[int, str], Prediction]:
    return {
        (prediction.user_id, prediction.checkpoint): prediction
        for prediction in Prediction.objects.filter(user_id__in=ids, lesson=lesson.slug)
    }


def prediction_text(checkpoint: Checkpoint, value: float | None) -> str:
    """Return a predicted or observed value the way the page shows it."""
    if value is None:
        return ""
    if checkpoint.answer_type == "choice":
        index = int(value)
        return checkpoint.choices[index] if 0 <= index < len(checkpoint.choices) else "?"
    return f"{value:.3g}{(' ' + checkpoint.unit) if checkpoint.unit else ''}"


def _learner_row(learner, lesson, progress, sandbox, runs, predictions, answers, now) -> dict:
    done_steps = {row["step"] for row in progress if not row["checkpoint"]}
    passed = {row["checkpoint"] for row in progress if row["checkpoint"]}
    current = next((step.id for step in lesson.steps if step.id not in done_steps), None)
    moments = [row["created_at"] for row in progress] + [run.created_at for run in runs[:1]]
    if sandbox is not None and sandbox.lesson == lesson.slug:
        moments.append(sandbox.created_at)
    last_activity = max(moments) if moments else None
    idle_minutes = int((now - last_activity).total_seconds() // 60) if last_activity else None
    steps = {
        step.id: "done" if step.id in done_steps else ("current" if step.id == current else "todo")
        for step in lesson.steps
    }
    recent = runs[:ERROR_RATE_RUNS]
    finished = [run for run in recent if run.state in (RunState.DONE, RunState.FAILED)]
    failed = sum(1 for run in finished if run.state == RunState.FAILED)
    checkpoints = {}
    for checkpoint in lesson.checkpoints:
        entry: dict = {"passed": checkpoint.id in passed}
        answer = answers.get((learner.pk, checkpoint.id))
        if answer is not None and 0 <= answer.answer < len(checkpoint.choices):
            entry.update(
                answer=checkpoint.choices[answer.answer],
                answer_passed=answer.passed,
                attempts=answer.attempts,
            )
        prediction = predictions.get((learner.pk, checkpoint.id))
        if prediction is not None:
            entry.update(
                predicted=prediction_text(checkpoint, prediction.value),
                predicted_value=prediction.value,
                observed=prediction_text(
                    checkpoint,
                    prediction.observed_choice
                    if checkpoint.answer_type == "choice"
                    else prediction.observed,
                ),
                observed_value=prediction.observed,
                correct=prediction.correct,
            )
        checkpoints[checkpoint.id] = entry
    last = runs[0] if runs else None
    return {
        "id": learner.pk,
        "username": learner.username,
        "steps": steps,
        "current_step": current,
        "idle_minutes": idle_minutes,
        "stuck": bool(current and idle_minutes is not None and idle_minutes >= STUCK_AFTER_MINUTES),
        "sandbox": _sandbox_state(sandbox),
        "last_run": _run_state(last),
        "runs": len(finished),
        "failed_runs": failed,
        "error_rate": round(failed / len(finished), 3) if finished else None,
        "checkpoints": checkpoints,
    }


def _sandbox_state(sandbox: Sandbox | None) -> dict | None:
    if sandbox is None:
        return None
    return {
        "id": sandbox.id,
        "lesson": sandbox.lesson,
        "state": sandbox.state,
        "services": {
            name: (info.get("state") if isinstance(info, dict) else str(info))
            for name, info in (sandbox.services or {}).items()
        },
    }


def _run_state(run: Run | None) -> dict | None:
    if run is None:
        return None
    headline = (run.result or {}).get("headline", "") if isinstance(run.result, dict) else ""
    return {
        "id": run.id,
        "experiment": run.experiment,
        "state": run.state,
        "ok": (run.result or {}).get("ok") if isinstance(run.result, dict) else None,
        "headline": headline,
        "error": run.error,
        "finished_at": iso(run.finished_at),
    }


def scenarios_state(*, cohort: Cohort, learners: list, limit: int = 5) -> list[dict]:
    """Return the cohort's recent scenarios with each visible learner's confirmation."""
    names = {learner.pk: learner.username for learner in learners}
    items = []
    for scenario in Scenario.objects.filter(cohort=cohort).prefetch_related("targets")[:limit]:
        targets = [
            {
                "learner": names[target.learner_id],
                "sandbox": target.sandbox_id,
                "applied": target.applied,
                "error": target.error,
                "confirmed": target.confirmed_at is not None,
                "evidence": target.evidence,
                "cleared": target.cleared,
            }
            for target in scenario.targets.all()
            if target.learner_id in names
        ]
        items.append(
            {
                "id": scenario.id,
                "description": scenario.describe(),
                "lesson": scenario.lesson,
                "service": scenario.service,
                "action": scenario.action,
                "active": scenario.is_active,
                "ends_at": iso(scenario.ends_at),
                "ended_at": iso(scenario.ended_at),
                "targets": sorted(targets, key=lambda target: target["learner"]),
            }
        )
    return items


def class_results(
    *, lesson: Lesson, runs_by_user: dict, learners: list, predictions: dict | None = None
) -> list[dict]:
    """Return each experiment's headline figures across the class, one value per learner.

    A learner's value is from their latest finished run of that experiment; a
    prediction's figure (a ratio, say) is listed with the figures it is made of,
    and a number prediction's figure carries the class's predictions beside it.
    """
    predictions = predictions or {}
    results = []
    for experiment in lesson.experiments:
        latest: dict[int, Run] = {}
        for learner in learners:
            for run in runs_by_user.get(learner.pk, []):
                if run.experiment == experiment.name and run.state == RunState.DONE:
                    latest[learner.pk] = run
                    break
        figures: dict[str, dict] = {}
        for learner in learners:
            run = latest.get(learner.pk)
            if run is None or not isinstance(run.result, dict):
                continue
            for item in run.result.get("summary") or []:
                label = str(item.get("label", ""))
                value = grading.figure_value(run.result, label)
                if value is None or isinstance(item.get("value"), bool):
                    continue
                figure = figures.setdefault(
                    label, {"label": label, "unit": str(item.get("unit") or ""), "values": []}
                )
                figure["values"].append({"learner": learner.username, "value": value})
            for checkpoint in lesson.checkpoints:
                if checkpoint.kind != "predict" or checkpoint.experiment != experiment.name:
                    continue
                if not checkpoint.per:
                    continue
                value = grading.observed_figure(checkpoint, run.result)
                if value is None:
                    continue
                label = _figure_name(checkpoint)
                figure = figures.setdefault(
                    label, {"label": label, "unit": checkpoint.unit, "values": []}
                )
                figure["values"].append({"learner": learner.username, "value": value})
        for checkpoint in lesson.checkpoints:
            if (
                checkpoint.kind != "predict"
                or checkpoint.experiment != experiment.name
                or checkpoint.answer_type != "number"
            ):
                continue
            predicted = [
                {"learner": learner.username, "value": prediction.value}
                for learner in learners
                if (prediction := predictions.get((learner.pk, checkpoint.id))) is not None
            ]
            if predicted:
                label = _figure_name(checkpoint)
                figure = figures.setdefault(
                    label, {"label": label, "unit": checkpoint.unit, "values": []}
                )
                figure["predicted"] = predicted
        results.append(
            {
                "experiment": experiment.name,
                "title": experiment.title,
                "learners_with_runs": len(latest),
                "figures": list(figures.values()),
            }
        )
    return results


def prediction_for(
    *, user: AbstractBaseUser | AnonymousUser, lesson: Lesson, checkpoint_id: str
) -> Prediction | None:
    if not user.is_authenticated:
        return None
    return Prediction.objects.filter(
        user=user, lesson=lesson.slug, checkpoint=checkpoint_id
    ).first()


def lesson_list_for_picker() -> list[dict]:
    return [{"slug": lesson.slug, "title": lesson.title} for lesson in lesson_list()]
