"""Writes of sandboxes, runs and faults. Side effects wait for the commit."""

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from lab.curriculum.selectors import LessonNotFound, lesson_get
from sandbox_services.runtime import client

from .models import ACTIVE_STATES, Run, RunState, Sandbox, SandboxState

FAULT_ACTIONS = ("stop", "start", "delay", "error", "clear")
MAX_DELAY_MS = 10_000


class QuotaExceeded(Exception):
    """The site is full; the message is for the learner."""


class InputInvalid(Exception):
    def __init__(self, errors: dict[str, list[str]], detail: str = "Invalid input."):
        self.errors = errors
        self.detail = detail
        super().__init__(detail)


class SandboxNotRunning(Exception):
    """The sandbox is not in a state that can take this command."""


class RunQueueFull(Exception):
    """The sandbox already has a run going and a full queue; the message is for the learner."""


def _quota_lock() -> None:
    # SQLite runs these transactions as IMMEDIATE, which already serialises
    # them; PostgreSQL needs a lock so two starts can't both see room left.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(7121)")


def sandbox_start(*, user: AbstractBaseUser, lesson: str) -> Sandbox:
    """Start a sandbox for ``lesson``: stop the learner's oldest over quota, refuse when the site is full."""
    from .tasks import sandbox_start_task, sandbox_stop_task

    try:
        lesson_get(slug=str(lesson))
    except LessonNotFound:
        raise InputInvalid({"lesson": [f"no lesson {lesson!r}"]}) from None
    now = timezone.now()
    with transaction.atomic():
        _quota_lock()
        mine = list(
            Sandbox.objects.filter(
                owner=user, state__in=(SandboxState.STARTING, SandboxState.RUNNING)
            ).order_by("created_at")
        )
        to_stop = mine[: max(0, len(mine) - settings.LAB_SANDBOXES_PER_LEARNER + 1)]
        active = _sandboxes_holding_room(exclude=[sandbox.id for sandbox in to_stop])
        if active >= settings.LAB_SANDBOXES_PER_SITE:
            raise QuotaExceeded(
                f"The lab is full: {active} of {settings.LAB_SANDBOXES_PER_SITE} sandboxes are "
                "running. Nothing was started; try again in a few minutes."
            )
        for old in to_stop:
            old.state = SandboxState.STOPPING
            old.reason = (
                f"Stopped to start a sandbox for the {lesson} lesson (one sandbox per learner)."
            )
            old.save(update_fields=["state", "reason"])
            transaction.on_commit(lambda old_id=old.id: sandbox_stop_task.delay(old_id))
        sandbox = Sandbox.objects.create(
            owner=user,
            lesson=lesson,
            state=SandboxState.STARTING,
            expires_at=now + timedelta(seconds=settings.LAB_SANDBOX_HARD_DEADLINE),
        )
        transaction.on_commit(lambda: sandbox_start_task.delay(sandbox.id))
    return sandbox


def _sandboxes_holding_room(*, exclude: list[str]) -> int:
    """Count the sandboxes that take room on the site: starting, running, or stopping with processes.

    A stopping sandbox whose supervisor is gone (its heartbeat key expired or
    was deleted at its end) holds nothing any more, even before its end is recorded.
    """
    live = Sandbox.objects.filter(state__in=ACTIVE_STATES).exclude(id__in=exclude)
    starting_or_running = live.exclude(state=SandboxState.STOPPING).count()
    stopping = list(live.filter(state=SandboxState.STOPPING).values_list("id", flat=True))
    return starting_or_running + sum(1 for sandbox_id in stopping if client.is_alive(sandbox_id))


def sandbox_stop(*, sandbox: Sandbox) -> Sandbox:
    from .tasks import sandbox_stop_task

    if sandbox.state not in (SandboxState.STARTING, SandboxState.RUNNING):
        return sandbox
    with transaction.atomic():
        Sandbox.objects.filter(id=sandbox.id).update(state=SandboxState.STOPPING)
        sandbox.state = SandboxState.STOPPING
        transaction.on_commit(lambda: sandbox_stop_task.delay(sandbox.id))
    return sandbox


def sandbox_touch(*, sandbox: Sandbox) -> None:
    """Move the idle deadline: the learner is still here."""
    if sandbox.state == SandboxState.RUNNING:
        client.touch(sandbox.id, settings.LAB_SANDBOX_IDLE_TIMEOUT)


def run_create(*, sandbox: Sandbox, experiment: str, params: dict) -> Run:
    """Queue a run of an experiment of the sandbox's lesson.

    ``experiment`` and ``params`` are the API's validated data (RunCreateInput):
    the parameters were checked against the lesson's LAB, defaults filled in, by
    the one validator; they are stored and sent to the run as they are.
    """
    from .tasks import run_execute_task

    if sandbox.state != SandboxState.RUNNING:
        raise SandboxNotRunning(f"The sandbox is {sandbox.state}; start it to run experiments.")
    with transaction.atomic():
        _quota_lock()  # two posts at once must not both see the last place in the queue
        waiting = sandbox.runs.filter(state__in=(RunState.QUEUED, RunState.RUNNING)).count()
        if waiting > settings.LAB_RUNS_QUEUED:  # one running, LAB_RUNS_QUEUED waiting
            raise RunQueueFull(
                f"This sandbox runs one experiment at a time and {waiting - 1} are already "
                f"waiting (at most {settings.LAB_RUNS_QUEUED}). Wait for one to finish."
            )
        run = Run.objects.create(sandbox=sandbox, experiment=experiment, params=params)
        transaction.on_commit(lambda: run_execute_task.delay(run.id))
    sandbox_touch(sandbox=sandbox)
    return run


def fault_apply(
    *, sandbox: Sandbox, service: str, action: str, delay_ms=None, error_rate=None
) -> dict:
    """Stop, start, slow or break one service of a running sandbox; return the services' states."""
    errors: dict[str, list[str]] = {}
    names = set(sandbox.services or {})
    if service not in names:
        errors["service"] = [
            f"no service {service!r}; this sandbox has: {', '.join(sorted(names))}"
        ]
    if action not in FAULT_ACTIONS:
        errors["action"] = [f"must be one of: {', '.join(FAULT_ACTIONS)}"]
    params: dict = {}
    if action == "delay":
        if not _is_number(delay_ms) or not 0 <= delay_ms <= MAX_DELAY_MS:
            errors["delay_ms"] = [f"must be a number of milliseconds between 0 and {MAX_DELAY_MS}"]
        else:
            params["delay_ms"] = float(delay_ms)
    if action == "error":
        if not _is_number(error_rate) or not 0 <= error_rate <= 1:
            errors["error_rate"] = ["must be a fraction between 0 and 1"]
        else:
            params["error_rate"] = float(error_rate)
    if errors:
        raise InputInvalid(errors)
    if sandbox.state != SandboxState.RUNNING:
        raise SandboxNotRunning(
            f"The sandbox is {sandbox.state}; faults apply to a running sandbox."
        )
    try:
        reply = client.command(sandbox.id, "service", service=service, op=action, **params)
    except client.SandboxGone:
        raise SandboxNotRunning("The sandbox no longer answers; it may have expired.") from None
    except client.SandboxError as error:
        raise InputInvalid({"service": [str(error)]}, detail=str(error)) from None
    services = reply.get("services")
    if isinstance(services, dict):
        Sandbox.objects.filter(id=sandbox.id).update(services=services)
        sandbox.services = services
    sandbox_touch(sandbox=sandbox)
    return sandbox.services


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
