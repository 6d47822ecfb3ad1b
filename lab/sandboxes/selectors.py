"""Reads of sandboxes and runs, always through who is asking."""

import re

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import BooleanField, Case, Count, Q, QuerySet, When
from django.utils import timezone

from lab.users.selectors import can_watch, is_instructor

from .models import ACTIVE_STATES, Run, Sandbox, SandboxState, WarmPool

# Sandbox and run ids are uuid4 hex. Anything else (a NUL byte, which PostgreSQL
# refuses in text with an error) is absent without asking the database.
_ID = re.compile(r"[0-9a-f]{32}")


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _text_filter(value: str | None) -> str | None:
    # A NUL can match nothing stored, and PostgreSQL errors on it: match nothing.
    return value.replace("\x00", "\ufffd") if value else value


def sandbox_get_visible(
    *, user: AbstractBaseUser | AnonymousUser, sandbox_id: str
) -> Sandbox | None:
    """Return the sandbox if ``user`` may watch its owner; None otherwise (as if absent)."""
    if not is_id(sandbox_id):
        return None
    sandbox = Sandbox.objects.filter(id=sandbox_id).first()
    if sandbox is None or not can_watch(user, sandbox.owner_id):
        return None
    return sandbox


def sandbox_list_mine(*, user: AbstractBaseUser, lesson: str | None = None) -> QuerySet[Sandbox]:
    sandboxes = Sandbox.objects.filter(owner=user)
    if lesson:
        sandboxes = sandboxes.filter(lesson=_text_filter(lesson))
    return sandboxes


def sandbox_current(*, user: AbstractBaseUser | AnonymousUser, lesson: str) -> Sandbox | None:
    """Return the user's newest sandbox of a lesson that is still active, if any."""
    if not user.is_authenticated:
        return None
    return Sandbox.objects.filter(owner=user, lesson=lesson, state__in=ACTIVE_STATES).first()


def sandbox_list_active() -> QuerySet[Sandbox]:
    return Sandbox.objects.filter(state__in=ACTIVE_STATES).select_related("owner")


def run_get_visible(*, user: AbstractBaseUser | AnonymousUser, run_id: str) -> Run | None:
    if not is_id(run_id):
        return None
    run = Run.objects.select_related("sandbox").filter(id=run_id).first()
    if run is None or not can_watch(user, run.sandbox.owner_id):
        return None
    return run


def run_list(*, sandbox: Sandbox, experiment: str | None = None, limit: int = 50) -> list[Run]:
    runs = sandbox.runs.all()
    if experiment:
        runs = runs.filter(experiment=_text_filter(experiment))
    return list(runs[:limit])


def runs_of_user(
    *, user: AbstractBaseUser, lesson: str, experiment: str | None = None, limit: int = 50
) -> list[Run]:
    """Return a learner's kept runs of a lesson across their sandboxes, newest first."""
    runs = Run.objects.filter(sandbox__owner=user, sandbox__lesson=lesson)
    if experiment:
        runs = runs.filter(experiment=_text_filter(experiment))
    return list(runs.order_by("-created_at")[:limit])


def can_control(*, user: AbstractBaseUser | AnonymousUser, sandbox: Sandbox) -> bool:
    """Only the owner drives a sandbox; instructors watch read-only."""
    return user.is_authenticated and user.pk == sandbox.owner_id


__all__ = [
    "can_control",
    "is_instructor",
    "run_get_visible",
    "run_list",
    "runs_of_user",
    "sandbox_current",
    "sandbox_get_visible",
    "sandbox_list_active",
    "sandbox_list_mine",
]


def warm_pools_taught(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[WarmPool]:
    """Return the pools of the cohorts ``user`` teaches, newest first, with their counts."""
    if not is_instructor(user):
        return WarmPool.objects.none()
    now = timezone.now()
    untaken = Q(sandboxes__taken_at__isnull=True)
    return (
        WarmPool.objects.filter(cohort__instructors=user)
        .annotate(
            warm=Count("sandboxes", filter=untaken & Q(sandboxes__state=SandboxState.RUNNING)),
            starting=Count("sandboxes", filter=untaken & Q(sandboxes__state=SandboxState.STARTING)),
            taken=Count("sandboxes", filter=Q(sandboxes__taken_at__isnull=False)),
            failed=Count("sandboxes", filter=untaken & Q(sandboxes__state=SandboxState.FAILED)),
            live=Case(When(until__gt=now, then=True), default=False, output_field=BooleanField()),
        )
        .select_related("cohort")
    )


def warm_pool_get_taught(
    *, user: AbstractBaseUser | AnonymousUser, pool_id: int
) -> WarmPool | None:
    if not 0 < pool_id < 2**31:  # the path takes any digits; the column does not
        return None
    return warm_pools_taught(user=user).filter(id=pool_id).first()
