"""Writes of sandboxes, runs and faults. Side effects wait for the commit."""

import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from lab.curriculum.selectors import LessonNotFound, lesson_get
from sandbox_services.runtime import client

from . import events
from .models import ACTIVE_STATES, Run, RunState, Sandbox, SandboxState, WarmPool

FAULT_ACTIONS = ("stop", "start", "delay", "error", "clear")
MAX_DELAY_MS = 10_000
# The owner of warm sandboxes nobody has taken (see pool_keeper).
POOL_KEEPER = "(warm pool)"
MIN_WARM_MINUTES, MAX_WARM_MINUTES = 5, 240


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
        # A warm sandbox nobody took yet gives its place to a learner who came.
        if active >= settings.LAB_SANDBOXES_PER_SITE and not _untaken_warm().exists():
            raise QuotaExceeded(
                f"The lab is full: {active} of {settings.LAB_SANDBOXES_PER_SITE} sandboxes are "
                "running. Nothing was started; try again in a few minutes."
            )
        warm = _take_warm(user=user, lesson=lesson, now=now)
        if warm is None and active >= settings.LAB_SANDBOXES_PER_SITE:
            _make_room_from_pools()
        for old in to_stop:
            old.state = SandboxState.STOPPING
            old.reason = (
                f"Stopped to start a sandbox for the {lesson} lesson (one sandbox per learner)."
            )
            old.save(update_fields=["state", "reason"])
            transaction.on_commit(lambda old_id=old.id: sandbox_stop_task.delay(old_id))
        if warm is not None:
            return warm
        sandbox = Sandbox.objects.create(
            owner=user,
            lesson=lesson,
            state=SandboxState.STARTING,
            expires_at=now + timedelta(seconds=settings.LAB_SANDBOX_HARD_DEADLINE),
        )
        transaction.on_commit(lambda: sandbox_start_task.delay(sandbox.id))
    return sandbox


def _take_warm(*, user: AbstractBaseUser, lesson: str, now) -> Sandbox | None:
    """Hand the learner a running warm sandbox of a pool for their cohort, if one waits.

    Runs inside ``sandbox_start``'s transaction, after its lock: two learners
    never take the same one. The supervisor does not know whose it is; only the
    row changes, and the idle clock starts now, as it would for a new sandbox.
    """
    warm = (
        _untaken_warm()
        .filter(
            state=SandboxState.RUNNING,
            lesson=lesson,
            warm_pool__cohort__learners=user,
            warm_pool__until__gt=now,
        )
        .order_by("created_at")
        .first()
    )
    if warm is None:
        return None
    warm.owner, warm.taken_at = user, now
    warm.save(update_fields=["owner", "taken_at"])

    def announce() -> None:
        client.touch(warm.id, settings.LAB_SANDBOX_IDLE_TIMEOUT)
        events.sandbox_changed(warm)

    transaction.on_commit(announce)
    return warm


def _untaken_warm():
    return Sandbox.objects.filter(
        warm_pool__isnull=False,
        taken_at__isnull=True,
        state__in=(SandboxState.STARTING, SandboxState.RUNNING),
    )


def _make_room_from_pools() -> None:
    """Stop the oldest untaken warm sandbox: the site is full and a learner is waiting."""
    oldest = _untaken_warm().order_by("created_at").values_list("id", flat=True)[:1]
    _stop_after_commit(list(oldest), "Stopped untaken: a learner needed its place.")


def _stop_after_commit(sandbox_ids: list[str], reason: str) -> None:
    """Mark sandboxes stopping with ``reason``; ask their supervisors to stop once committed."""
    from .tasks import sandbox_stop_task

    Sandbox.objects.filter(id__in=sandbox_ids).update(state=SandboxState.STOPPING, reason=reason)
    for sandbox_id in sandbox_ids:
        transaction.on_commit(lambda sandbox_id=sandbox_id: sandbox_stop_task.delay(sandbox_id))


def pool_keeper() -> AbstractBaseUser:
    """Return the user that owns warm sandboxes nobody has taken yet.

    Its name has a space and brackets, which sign-up refuses, and it cannot log
    in: only a superuser, who sees every row, may see its sandboxes.
    """
    from django.contrib.auth import get_user_model

    keeper, created = get_user_model().objects.get_or_create(
        username=POOL_KEEPER, defaults={"is_active": False}
    )
    if created:
        keeper.set_unusable_password()
        keeper.save(update_fields=["password"])
    return keeper


def warm_pool_set(
    *, instructor: AbstractBaseUser, cohort_id: int, lesson: str, size: int, minutes: int
) -> WarmPool:
    """Keep ``size`` sandboxes of ``lesson`` warm for a cohort ``instructor`` teaches; return the pool.

    One pool per cohort and lesson: asking again changes its size and end
    (sandboxes already warm stay warm; past a smaller size the newest stop).
    Bounded by the site's room: a pool never stops a learner's sandbox, and a
    learner's start stops an untaken warm one when the site is full.
    """
    from lab.users.models import Cohort

    from .tasks import warm_pool_fill_task

    errors: dict[str, list[str]] = {}
    cohort = Cohort.objects.filter(id=cohort_id, instructors=instructor).first()
    if cohort is None:
        errors["cohort"] = ["no cohort you teach has this id"]
    try:
        lesson_get(slug=str(lesson))
    except LessonNotFound:
        errors["lesson"] = [f"no lesson {lesson!r}"]
    if not _whole_between(size, 1, settings.LAB_SANDBOXES_PER_SITE):
        errors["size"] = [
            f"must be a whole number from 1 to {settings.LAB_SANDBOXES_PER_SITE} "
            "(the site's sandboxes)"
        ]
    if not _whole_between(minutes, MIN_WARM_MINUTES, MAX_WARM_MINUTES):
        errors["minutes"] = [
            f"must be a whole number from {MIN_WARM_MINUTES} to {MAX_WARM_MINUTES}"
        ]
    if errors:
        raise InputInvalid(errors)
    now = timezone.now()
    with transaction.atomic():
        _quota_lock()
        pool = WarmPool.objects.filter(cohort=cohort, lesson=lesson, until__gt=now).first()
        if pool is None:
            pool = WarmPool(cohort=cohort, lesson=lesson, created_by=instructor)
        pool.size, pool.until = size, now + timedelta(minutes=minutes)
        pool.save()
        transaction.on_commit(lambda: warm_pool_fill_task.delay(pool.id))
    return pool


def warm_pool_fill(*, pool_id: int) -> int:
    """Start the sandboxes a live pool is short of, as far as the site has room; return how many.

    A pool made smaller stops its newest untaken ones past the new size; a pool
    past its end stops all its untaken ones.
    """
    from .tasks import sandbox_start_task

    now = timezone.now()
    with transaction.atomic():
        _quota_lock()
        pool = WarmPool.objects.filter(id=pool_id).first()
        if pool is None:
            return 0
        if pool.until <= now:
            _warm_pool_end(pool, now)
            return 0
        taken = pool.sandboxes.filter(taken_at__isnull=False).count()
        waiting = list(  # newest first: a smaller pool stops those
            _untaken_warm()
            .filter(warm_pool=pool)
            .order_by("-created_at")
            .values_list("id", flat=True)
        )
        _stop_after_commit(
            waiting[: max(0, taken + len(waiting) - pool.size)], "Its warm pool was made smaller."
        )
        room = settings.LAB_SANDBOXES_PER_SITE - _sandboxes_holding_room(exclude=[])
        # A lesson that fails to start must not be started forever: twice the size at most.
        started = pool.sandboxes.count()
        count = max(0, min(pool.size - taken - len(waiting), room, 2 * pool.size - started))
        keeper = pool_keeper() if count else None
        for _ in range(count):
            sandbox = Sandbox.objects.create(
                owner=keeper,
                lesson=pool.lesson,
                state=SandboxState.STARTING,
                warm_pool=pool,
                # A learner who takes it at the pool's last minute still gets the full time.
                expires_at=pool.until + timedelta(seconds=settings.LAB_SANDBOX_HARD_DEADLINE),
            )
            transaction.on_commit(
                lambda sandbox_id=sandbox.id: sandbox_start_task.delay(sandbox_id)
            )
    return count


def warm_pool_end(*, pool: WarmPool) -> WarmPool:
    """End a pool now: its untaken sandboxes stop; the ones learners took are theirs."""
    with transaction.atomic():
        _quota_lock()
        _warm_pool_end(pool, timezone.now())
    return pool


def _warm_pool_end(pool: WarmPool, now) -> None:
    if pool.until > now:
        pool.until = now
        pool.save(update_fields=["until"])
    untaken = _untaken_warm().filter(warm_pool=pool).values_list("id", flat=True)
    _stop_after_commit(list(untaken), "The warm pool ended untaken.")


def warm_orphans_stop() -> int:
    """Stop untaken warm sandboxes whose pool is gone (its cohort was deleted); return how many."""
    orphans = Sandbox.objects.filter(
        owner__username=POOL_KEEPER,
        warm_pool__isnull=True,
        state__in=(SandboxState.STARTING, SandboxState.RUNNING),
    ).values_list("id", flat=True)
    with transaction.atomic():
        orphans = list(orphans)
        _stop_after_commit(orphans, "Its warm pool was deleted untaken.")
    return len(orphans)


def warm_idle_timeout(sandbox: Sandbox) -> float:
    """Return the idle timeout to start ``sandbox`` with: an untaken warm one waits for its pool's end."""
    idle = settings.LAB_SANDBOX_IDLE_TIMEOUT
    if sandbox.warm_pool_id is None or sandbox.taken_at is not None:
        return idle
    left = (sandbox.warm_pool.until - timezone.now()).total_seconds()
    return max(idle, left + idle)


def _whole_between(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


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
