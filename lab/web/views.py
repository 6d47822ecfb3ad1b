"""Pages: the lesson list, a lesson with its live panel, sign-up, an instructor watching a sandbox.

The class itself (cohorts, the live class view) is ``lab.classroom``; its grid
links each learner's sandbox to ``instructor_sandbox`` here.

Views stay thin: they read through the catalog, sandboxes and accounts
selectors, write through their services, and hand the live panel what it needs
as one JSON object (``lab_config``) that the page embeds with json_script.
"""

import ipaddress

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lab.classroom.claims import claim_results
from lab.users.selectors import is_guest, is_instructor
from lab.users.services import (
    MODEL_BACKEND,
    GuestLimitReached,
    guest_convert,
    guest_create,
    learner_create,
)
from lab.curriculum.selectors import (
    LessonNotFound,
    lesson_get,
    lesson_list,
    progress_for,
    progress_summary,
)
from lab.curriculum.services import ProgressInvalid, progress_record
from lab.sandboxes.selectors import sandbox_current, sandbox_get_visible, sandbox_list_mine
from lab.sandboxes.serializers import SandboxOutput

from .forms import QuizAnswerForm, SignUpForm


RUN_CHECKPOINT_RECHECKS = 3


def _int_or_zero(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _lesson_or_404(slug: str):
    try:
        return lesson_get(slug=slug)
    except LessonNotFound:
        raise Http404("No such lesson.") from None


def _lab_config(
    *, lesson, sandbox, read_only: bool, history_sandbox=None, signed_in: bool = True
) -> dict:
    return {
        "lesson": lesson.as_dict(),
        "sandbox": dict(SandboxOutput(sandbox).data) if sandbox else None,
        # Kept runs are listed through a sandbox; with none running, the last one shows them.
        "historySandbox": (history_sandbox or sandbox).id if (history_sandbox or sandbox) else None,
        "readOnly": read_only,
        # An anonymous visitor reads; the page offers "Try as a guest" instead of Start.
        "signedIn": signed_in,
    }


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    """Return the ``next`` the request names if it stays on this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def client_address(request: HttpRequest) -> str | None:
    """Return the visitor's address: REMOTE_ADDR, or behind the TLS proxy, the one it saw.

    Behind the proxy every connection comes from the proxy. It appends the address
    it saw to X-Forwarded-For, so the last entry is the one to trust; earlier
    entries come from the client and prove nothing.
    """
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR")


def _signed_in_or_403(request: HttpRequest) -> None:
    if not request.user.is_authenticated:
        raise PermissionDenied("Choose Try as a guest, or sign in, to keep your progress.")


def _steps_context(lesson, progress: dict) -> list[dict]:
    checkpoints_by_step: dict[str, list] = {}
    for checkpoint in lesson.checkpoints:
        checkpoints_by_step.setdefault(checkpoint.step, []).append(
            {"checkpoint": checkpoint, "passed": progress["checkpoints"].get(checkpoint.id, False)}
        )
    return [
        {
            "step": step,
            "done": progress["steps"].get(step.id, False),
            "checkpoints": checkpoints_by_step.get(step.id, []),
        }
        for step in lesson.steps
    ]


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    # Browsing makes no guest: only the "Try as a guest" form does.
    percents = progress_summary(user=request.user) if request.user.is_authenticated else {}
    # Each lesson's claim, and whether the site's latest recorded run says it held.
    claims = {item["lesson"].slug: item for item in claim_results()}
    lessons = [
        {
            "lesson": lesson,
            "percent": percents.get(lesson.slug, 0),
            "claim": claims.get(lesson.slug),
        }
        for lesson in lesson_list()
    ]
    return render(request, "web/home.html", {"lessons": lessons})


@require_GET
@ensure_csrf_cookie
def lesson_detail(request: HttpRequest, slug: str) -> HttpResponse:
    lesson = _lesson_or_404(slug)
    user = request.user
    signed_in = user.is_authenticated
    progress = progress_for(user=user, lesson=lesson)
    sandbox = sandbox_current(user=user, lesson=lesson.slug)
    last_sandbox = sandbox or (
        sandbox_list_mine(user=user, lesson=lesson.slug).first() if signed_in else None
    )
    context = {
        "lesson": lesson,
        "progress": progress,
        "steps": _steps_context(lesson, progress),
        "lab_config": _lab_config(
            lesson=lesson,
            sandbox=sandbox,
            read_only=False,
            history_sandbox=last_sandbox,
            signed_in=signed_in,
        ),
        # Nothing to record for an anonymous reader: steps and checkpoints show read-only.
        "read_only": not signed_in,
    }
    return render(request, "web/lesson.html", context)


@require_POST
def step_done(request: HttpRequest, slug: str, step_id: str) -> HttpResponse:
    """Mark a step read (htmx swaps the step's status; without htmx, back to the step)."""
    lesson = _lesson_or_404(slug)
    _signed_in_or_403(request)
    user = request.user
    try:
        progress_record(user=user, lesson=lesson, step=step_id)
    except ProgressInvalid:
        raise Http404("No such step.") from None
    progress = progress_for(user=user, lesson=lesson)
    if not request.headers.get("HX-Request"):
        return redirect(f"{request.path.rsplit('/steps/', 1)[0]}/#step-{step_id}")
    context = {
        "lesson": lesson,
        "step": lesson.step(step_id),
        "done": True,
        "progress": progress,
        "oob_progress": True,
    }
    return render(request, "web/_step_status.html", context)


@require_http_methods(["GET", "POST"])
def checkpoint_answer(request: HttpRequest, slug: str, checkpoint_id: str) -> HttpResponse:
    """Return a checkpoint as an htmx partial; on POST, first check the answer or mark it read.

    GET refreshes a run checkpoint after an experiment's run finished: the
    server passed it then, never because the browser said so.
    """
    lesson = _lesson_or_404(slug)
    checkpoint = lesson.checkpoint(checkpoint_id)
    if checkpoint is None or (request.method == "POST" and checkpoint.kind == "run"):
        raise Http404("No such checkpoint to answer.")
    if request.method == "POST":
        _signed_in_or_403(request)
    user = request.user
    if request.method == "GET":
        progress = progress_for(user=user, lesson=lesson)
        passed = progress["checkpoints"].get(checkpoint.id, False)
        item = {"checkpoint": checkpoint, "passed": passed}
        # The run's "done" message can reach the browser a moment before the
        # server records the checkpoint: look again a few times, then stop.
        attempt = _int_or_zero(request.GET.get("attempt"))
        recheck = None if passed or attempt >= RUN_CHECKPOINT_RECHECKS else attempt + 1
        context = {
            "lesson": lesson,
            "item": item,
            "progress": progress,
            "oob_progress": True,
            "recheck": recheck,
        }
        return render(request, "web/_checkpoint.html", context)
    verdict, chosen, error = None, None, ""
    if checkpoint.kind == "quiz":
        form = QuizAnswerForm(request.POST)
        if form.is_valid():
            chosen = form.cleaned_data["answer"]
        else:
            error = " ".join(form.errors.get("answer", ["Pick an answer."]))
    if not error:
        try:
            verdict = progress_record(
                user=user, lesson=lesson, checkpoint=checkpoint.id, answer=chosen
            )
        except ProgressInvalid as invalid:
            error = " ".join(
                message for field_messages in invalid.errors.values() for message in field_messages
            )
    if not request.headers.get("HX-Request"):
        return redirect(f"/lessons/{lesson.slug}/#checkpoint-{checkpoint.id}")
    progress = progress_for(user=user, lesson=lesson)
    context = {
        "lesson": lesson,
        "item": {
            "checkpoint": checkpoint,
            "passed": progress["checkpoints"].get(checkpoint.id, False),
        },
        "verdict": verdict,
        "chosen": chosen,
        "error": error,
        "progress": progress,
        "oob_progress": True,
    }
    return render(request, "web/_checkpoint.html", context)


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Give the current guest a name and password (keeping their progress), or make a learner."""
    if request.user.is_authenticated and not is_guest(request.user):
        return redirect("/")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        username, password = form.cleaned_data["username"], form.cleaned_data["password"]
        if request.user.is_authenticated:
            user = guest_convert(user=request.user, username=username, password=password)
        else:
            user = learner_create(username=username, password=password)
        # Logging in again rotates the session key and keeps the session's data.
        login(request, user, backend=MODEL_BACKEND)
        messages.success(request, f"Welcome, {user.username}. Your progress is kept.")
        return redirect(_safe_next(request))
    return render(request, "registration/signup.html", {"form": form})


@require_POST
def guest_start(request: HttpRequest) -> HttpResponse:
    """Make a guest for this browser on an explicit, CSRF-checked POST, then go back."""
    if not request.user.is_authenticated:
        try:
            user = guest_create(client_address=client_address(request))
        except GuestLimitReached as refused:
            return render(request, "web/guest_refused.html", {"reason": str(refused)}, status=429)
        login(request, user, backend=MODEL_BACKEND)
    return redirect(_safe_next(request))


def _instructor_only(request: HttpRequest) -> None:
    if not is_instructor(request.user):
        raise PermissionDenied("Instructors only.")


@require_GET
@ensure_csrf_cookie
def instructor_sandbox(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """A learner's sandbox through the same live panel, read-only."""
    if not request.user.is_authenticated:
        return redirect(f"/accounts/login/?next={request.path}")
    _instructor_only(request)
    sandbox = sandbox_get_visible(user=request.user, sandbox_id=sandbox_id)
    if sandbox is None:
        raise Http404("No such sandbox.")
    lesson = _lesson_or_404(sandbox.lesson)
    progress = progress_for(user=sandbox.owner, lesson=lesson)
    context = {
        "lesson": lesson,
        "progress": progress,
        "steps": _steps_context(lesson, progress),
        "lab_config": _lab_config(lesson=lesson, sandbox=sandbox, read_only=True),
        "read_only": True,
        "watched": sandbox.owner,
    }
    return render(request, "web/lesson.html", context)
