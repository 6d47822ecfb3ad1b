"""Pages of the class: cohorts, joining, the live class view, scenarios, the CSV, predictions."""

import csv
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lab.curriculum.selectors import LessonNotFound, lesson_get, progress_for
from lab.users.selectors import is_instructor

from . import exports, selectors, services
from .forms import CohortForm, JoinForm, ScenarioForm
from .models import Scenario

PREDICTION_RECHECKS = 3


def _signed_in(request: HttpRequest) -> None:
    if not request.user.is_authenticated:
        raise PermissionDenied("Sign in, or try as a guest, first.")


def _cohort_or_404(request: HttpRequest, cohort_id: int):
    cohort = selectors.cohort_get_taught(instructor=request.user, cohort_id=cohort_id)
    if cohort is None:
        raise Http404("No such cohort among yours.")
    return cohort


def _errors_text(invalid: services.ClassroomInvalid) -> str:
    return " ".join(message for values in invalid.errors.values() for message in values)


@require_http_methods(["GET", "POST"])
def cohorts(request: HttpRequest) -> HttpResponse:
    """An instructor's cohorts and a form for a new one; a learner's cohorts and the join form."""
    if not request.user.is_authenticated:
        return redirect(f"/accounts/login/?next={request.path}")
    teaching = is_instructor(request.user)
    form = CohortForm(request.POST or None) if teaching else None
    if request.method == "POST":
        if not teaching:
            raise PermissionDenied("Only instructors make cohorts.")
        if form.is_valid():
            try:
                cohort = services.cohort_create(
                    instructor=request.user, name=form.cleaned_data["name"]
                )
            except services.ClassroomInvalid as invalid:
                form.add_error("name", _errors_text(invalid))
            else:
                messages.success(
                    request,
                    f"Cohort {cohort.name} made. Learners join with the code "
                    f"{services.cohort_code(cohort=cohort)}.",
                )
                return redirect("classroom-cohort", cohort_id=cohort.id)
    taught = [
        {
            "cohort": cohort,
            "code": services.cohort_code(cohort=cohort),
            "learners": cohort.learners.count(),
        }
        for cohort in selectors.cohorts_taught(instructor=request.user)
    ]
    context = {
        "teaching": teaching,
        "form": form,
        "taught": taught,
        "joined": selectors.cohorts_joined(learner=request.user),
        "join_form": JoinForm(),
    }
    return render(request, "classroom/cohorts.html", context)


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest) -> HttpResponse:
    """Join a cohort with the code the instructor gave."""
    if not request.user.is_authenticated:
        return redirect(f"/accounts/login/?next={request.path}")
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            cohort = services.cohort_join(learner=request.user, code=form.cleaned_data["code"])
        except services.ClassroomInvalid as invalid:
            form.add_error("code", _errors_text(invalid))
        else:
            messages.success(
                request, f"You joined {cohort.name}. Your instructor sees your progress."
            )
            return redirect("classroom-cohorts")
    status = 400 if request.method == "POST" else 200
    return render(request, "classroom/join.html", {"join_form": form}, status=status)


@require_GET
@ensure_csrf_cookie
def cohort_detail(request: HttpRequest, cohort_id: int) -> HttpResponse:
    """The live class view: its data arrives over the WebSocket, pushed on change."""
    if not request.user.is_authenticated:
        return redirect(f"/accounts/login/?next={request.path}")
    cohort = _cohort_or_404(request, cohort_id)
    lesson = selectors.lesson_or_first(request.GET.get("lesson"))
    if lesson is None:
        raise Http404("No lessons yet.")
    config = {
        "cohort": cohort.id,
        "lesson": lesson.slug,
        "socket": f"/ws/classroom/cohorts/{cohort.id}/?lesson={lesson.slug}",
        "scenarioUrl": reverse("classroom-scenarios", args=[cohort.id]),
        # The read-only watch page of a learner's sandbox; the grid fills in the id.
        "watchUrl": reverse("instructor-sandbox", args=["SANDBOX"]),
        "stuck_after": selectors.STUCK_AFTER_MINUTES,
        "warmPoolsUrl": reverse("api-warm-pools"),
    }
    context = {
        "cohort": cohort,
        "code": services.cohort_code(cohort=cohort),
        "lesson": lesson,
        "lessons": selectors.lesson_list_for_picker(),
        "services": services.lesson_services(lesson=lesson.slug),
        "scenario_form": ScenarioForm(),
        "class_config": config,
        "site_places": settings.LAB_SANDBOXES_PER_SITE,
        "warm_default": max(1, min(cohort.learners.count(), settings.LAB_SANDBOXES_PER_SITE)),
    }
    return render(request, "classroom/cohort.html", context)


@require_GET
def progress_csv(request: HttpRequest, cohort_id: int) -> HttpResponse:
    """The cohort's progress, one row per learner and step or checkpoint."""
    _signed_in(request)
    cohort = _cohort_or_404(request, cohort_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"cohort-{cohort.id}-progress.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(exports.CSV_COLUMNS)
    writer.writerows(exports.progress_rows(viewer=request.user, cohort=cohort))
    return response


@require_POST
def scenario_push(request: HttpRequest, cohort_id: int) -> HttpResponse:
    """Push a fault to every running sandbox of the cohort in the lesson shown."""
    _signed_in(request)
    cohort = _cohort_or_404(request, cohort_id)
    lesson = request.POST.get("lesson", "")
    form = ScenarioForm(request.POST)
    back = (
        f"{reverse('classroom-cohort', args=[cohort.id])}?{urlencode({'lesson': lesson})}#scenarios"
    )
    if not form.is_valid():
        messages.error(request, "The scenario needs " + ", ".join(form.errors) + ".")
        return redirect(back)
    data = form.cleaned_data
    try:
        scenario = services.scenario_push(
            instructor=request.user,
            cohort=cohort,
            lesson=lesson,
            service=data["service"],
            action=data["action"],
            delay_ms=data.get("delay_ms"),
            error_rate=data.get("error_rate"),
            duration_s=data["duration_s"],
        )
    except services.ClassroomInvalid as invalid:
        messages.error(request, _errors_text(invalid))
        return redirect(back)
    count = scenario.targets.count()
    messages.success(
        request,
        f"Pushed: {scenario.describe()}, to {count} running sandbox{'es' if count != 1 else ''}.",
    )
    return redirect(back)


@require_POST
def scenario_reset(request: HttpRequest, cohort_id: int, scenario_id: int) -> HttpResponse:
    _signed_in(request)
    cohort = _cohort_or_404(request, cohort_id)
    scenario = Scenario.objects.filter(id=scenario_id, cohort=cohort).first()
    if scenario is None:
        raise Http404("No such scenario.")
    services.scenario_reset(scenario=scenario)
    messages.success(request, f"Reset: {scenario.describe()} is over.")
    return redirect(
        f"{reverse('classroom-cohort', args=[cohort.id])}?lesson={scenario.lesson}#scenarios"
    )


@require_http_methods(["GET", "POST"])
def prediction(request: HttpRequest, slug: str, checkpoint_id: str) -> HttpResponse:
    """A predict checkpoint as an htmx partial; on POST, record the prediction first."""
    try:
        lesson = lesson_get(slug=slug)
    except LessonNotFound:
        raise Http404("No such lesson.") from None
    checkpoint = lesson.checkpoint(checkpoint_id)
    if checkpoint is None or checkpoint.kind != "predict":
        raise Http404("No such prediction.")
    error = ""
    if request.method == "POST":
        _signed_in(request)
        try:
            services.prediction_record(
                user=request.user,
                lesson=lesson,
                checkpoint_id=checkpoint.id,
                value=request.POST.get("value", ""),
            )
        except services.ClassroomInvalid as invalid:
            error = _errors_text(invalid)
        if not request.headers.get("HX-Request"):
            return redirect(f"/lessons/{lesson.slug}/#checkpoint-{checkpoint.id}")
    progress = progress_for(user=request.user, lesson=lesson)
    context = prediction_context(
        user=request.user,
        lesson=lesson,
        checkpoint=checkpoint,
        passed=progress["checkpoints"].get(checkpoint.id, False),
        read_only=not request.user.is_authenticated,
    )
    # A run's "done" can reach the browser a moment before its grade is saved:
    # after a refresh that found no grade, look again a few times, then stop.
    recheck = None
    if request.method == "GET" and request.headers.get("HX-Request"):
        shown = context["prediction"]
        try:
            attempt = max(0, int(request.GET.get("attempt", 0)))
        except ValueError:
            attempt = 0
        if shown and not shown["graded"] and attempt < PREDICTION_RECHECKS:
            recheck = attempt + 1
    context.update(error=error, progress=progress, oob_progress=True, recheck=recheck)
    return render(request, "classroom/_prediction.html", context)


def prediction_context(*, user, lesson, checkpoint, passed: bool, read_only: bool) -> dict:
    """Return what the predict checkpoint's partial shows (the lesson page includes it too)."""
    found = selectors.prediction_for(user=user, lesson=lesson, checkpoint_id=checkpoint.id)
    shown = None
    if found is not None:
        observed = found.observed_choice if checkpoint.answer_type == "choice" else found.observed
        shown = {
            "value": found.value,
            "choice": int(found.value) if checkpoint.answer_type == "choice" else None,
            "predicted": selectors.prediction_text(checkpoint, found.value),
            "observed": selectors.prediction_text(checkpoint, observed) if found.is_graded else "",
            "correct": found.correct,
            "graded": found.is_graded,
        }
    return {
        "lesson": lesson,
        "checkpoint": checkpoint,
        "prediction": shown,
        "passed": passed,
        "read_only": read_only,
    }
