"""Celery tasks: start and stop sandboxes, run experiments, notice sandboxes that ended.

Two queues (lab/settings.py CELERY_TASK_ROUTES): starts, stops and the
reconciler go on the control queue, everything about runs on the default one,
each with its own worker threads, so no number of runs delays a start. No task
waits for a run: ``run_execute_task`` hands the run to its sandbox's
supervisor, which runs one at a time and pushes each run's start and end to
its worker; ``relay_run_events`` (a thread of that worker) turns them into
``run_event_task``, which records them.
"""

import importlib
import logging
import os
import threading
import time
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lab.curriculum.lessons import lab_module_name
from lab.curriculum.selectors import LessonNotFound, lesson_get
from lab.curriculum.services import progress_record_run
from sandbox_services.runtime import client, keys

from . import events, services, traces
from .models import ACTIVE_STATES, Run, RunState, Sandbox, SandboxState, WarmPool

log = logging.getLogger(__name__)
SPAWN_TIMEOUT_S = 20.0
RUN_MARGIN_S = 30.0
# A service flushes its spans on its own thread: copy a run's spans again this
# long after it ended, for the ones still on their way then.
LATE_SPANS_S = 3.0
# A queued run no task has handed over this long after it was made lost its task
# (a worker that died holding it): the reconciler hands it over.
UNDISPATCHED_GRACE_S = 30.0


@shared_task(bind=True)
def sandbox_start_task(self, sandbox_id: str) -> None:
    """Ask this worker's sandbox host to start the sandbox, then record what happened."""
    sandbox = Sandbox.objects.select_related("warm_pool").filter(id=sandbox_id).first()
    if sandbox is None or sandbox.state != SandboxState.STARTING:
        return
    host = self.request.hostname
    Sandbox.objects.filter(id=sandbox_id).update(worker=host)
    try:
        status = client.spawn(
            host=host,
            sandbox_id=sandbox_id,
            lesson=sandbox.lesson,
            hard_deadline=sandbox.expires_at.timestamp(),
            idle_timeout_s=services.warm_idle_timeout(sandbox),
            timeout_s=SPAWN_TIMEOUT_S,
            # This process's relay (relay_run_events) hears the sandbox's runs and end.
            report_to=keys.worker_events(host, os.getpid()),
        )
    except client.SandboxError as error:
        _end(sandbox_id, SandboxState.FAILED, f"The sandbox did not start: {error}")
        return
    # A stop may have been asked for while we waited: honour it now.
    updated = Sandbox.objects.filter(id=sandbox_id, state=SandboxState.STARTING).update(
        state=SandboxState.RUNNING, services=status.get("services", {}), started_at=timezone.now()
    )
    if not updated:
        sandbox_stop_task.delay(sandbox_id)
        return
    events.sandbox_changed(Sandbox.objects.get(id=sandbox_id))


@shared_task
def sandbox_stop_task(sandbox_id: str) -> None:
    """Tell the supervisor to stop everything; its end is recorded when it reports it.

    No thread waits for the services and teardown to end (seconds): the
    supervisor pushes its end to the worker (``sandbox_ended_task``), and the
    reconciler records any end that report missed.
    """
    try:
        client.send(sandbox_id, "stop")
    except client.SandboxGone:  # already gone: record it now
        _stopped(sandbox_id)


@shared_task
def warm_pool_fill_task(pool_id: int) -> int:
    """Start what a warm pool is short of (or stop its untaken sandboxes once it ended)."""
    return services.warm_pool_fill(pool_id=pool_id)


@shared_task
def sandbox_ended_task(sandbox_id: str, state: str, reason: str) -> None:
    """Record the end a sandbox's supervisor reported (stop, deadline, idle, failure)."""
    sandbox = Sandbox.objects.filter(id=sandbox_id, state__in=ACTIVE_STATES).first()
    if sandbox is None:
        return
    if sandbox.state == SandboxState.STOPPING:
        _stopped(sandbox_id)
    elif state in (SandboxState.STOPPED, SandboxState.FAILED, SandboxState.EXPIRED):
        _end(sandbox_id, state, reason)
    else:
        _end(sandbox_id, SandboxState.FAILED, reason or "The sandbox's supervisor ended.")


def _stopped(sandbox_id: str) -> None:
    # Keep the reason the stop was asked with (another lesson's sandbox took its place).
    reason = Sandbox.objects.filter(id=sandbox_id).values_list("reason", flat=True).first()
    _end(sandbox_id, SandboxState.STOPPED, reason or "Stopped from the lesson page.")


@shared_task
def run_execute_task(run_id: str) -> None:
    """Hand the run to its sandbox's supervisor, after any run of the sandbox queued before it.

    The supervisor runs a sandbox's runs one at a time in the order it hears
    them, and the worker's threads take these tasks side by side: runs posted
    a few milliseconds apart reached it in either order (in a CI run one of
    four began two runs' length before the one posted before it ended). Under the sandbox's row lock, the first
    task to come hands over every queued run of the sandbox made up to its
    own, oldest first; the tasks of those runs then find theirs handed over.
    """
    failed: list[tuple[Run, str]] = []
    with transaction.atomic():
        run = Run.objects.filter(id=run_id).first()
        if run is None:
            return
        # NO KEY UPDATE: serialises these tasks per sandbox, yet never holds up
        # run_create inserting a run (its foreign key takes KEY SHARE on the row).
        sandbox = Sandbox.objects.select_for_update(no_key=True).get(id=run.sandbox_id)
        due = Run.objects.filter(
            sandbox=sandbox,
            state=RunState.QUEUED,
            dispatched_at__isnull=True,
            created_at__lte=run.created_at,
        ).order_by("created_at")
        for each in due:
            if sandbox.state != SandboxState.RUNNING:
                failed.append((each, f"The sandbox is {sandbox.state}."))
            else:
                try:
                    client.send(
                        sandbox.id,
                        "run",
                        run_id=each.id,
                        experiment=each.experiment,
                        params=each.params,
                        events=True,
                    )
                except client.SandboxGone:
                    failed.append((each, "The sandbox stopped before the run began."))
            each.dispatched_at = timezone.now()
            each.save(update_fields=["dispatched_at"])
    for each, error in failed:  # after the commit: a page told of the end finds it recorded
        _run_end(each, RunState.FAILED, error=error)


@shared_task
def run_event_task(event: dict) -> None:
    """Record a run's start or end as its supervisor reported it."""
    run = (
        Run.objects.select_related("sandbox", "sandbox__owner")
        .filter(id=event.get("run_id"))
        .first()
    )
    if run is None:
        return
    since = int(event.get("since") or 0)
    if event.get("event") == "started":
        # Only a queued run starts: an end heard first (the two race here) stays the end.
        if Run.objects.filter(id=run.id, state=RunState.QUEUED).update(
            state=RunState.RUNNING, started_at=timezone.now()
        ):
            run.refresh_from_db()
            events.run_changed(run)
        return
    if run.state not in (RunState.QUEUED, RunState.RUNNING):
        return
    try:
        _record_end(run, since, event)
    finally:
        run_trace_keep_task.apply_async((run.id, since), countdown=LATE_SPANS_S)


def relay_run_events(worker: str, stop: threading.Event) -> None:
    """Turn what this worker's supervisors push into tasks: run starts and ends, sandbox ends.

    A thread of the worker that owns the sandbox host, not a task: it only
    moves each event to a queue, where any worker thread records it. The
    supervisors push to this process's list (``sandbox_start_task`` names it
    with the same pid: the worker's pool is threads, as scripts/run_lab.py runs it).
    """
    while not stop.is_set():
        try:
            event = client.pop_event(worker, os.getpid(), timeout_s=1.0)
            if event is None:
                continue
            if event.get("event") == "sandbox-ended":
                sandbox_ended_task.delay(
                    str(event.get("sandbox_id")),
                    str(event.get("state", "")),
                    str(event.get("reason", "")),
                )
            else:
                run_event_task.delay(event)
        except Exception:  # Redis or the broker away: retry, never end the relay
            log.exception("relaying run events of %s", worker)
            time.sleep(1.0)


def relay_start(worker: str) -> threading.Event:
    """Start ``relay_run_events`` on a daemon thread; set the returned event to end it."""
    stop = threading.Event()
    threading.Thread(
        target=relay_run_events, args=(worker, stop), name="run-events", daemon=True
    ).start()
    return stop


@shared_task
def run_trace_keep_task(run_id: str, since: int = 0) -> None:
    """Copy a run's late spans from its sandbox, if it still runs, beside the ones kept."""
    run = Run.objects.filter(id=run_id).first()
    if run is not None:
        traces.run_trace_keep(run=run, since=since)


def _record_end(run: Run, since: int, reply: dict) -> None:
    if reply.get("state") == "done":
        # Progress first, so a page that hears "done" finds its checkpoint passed.
        try:
            lesson = lesson_get(slug=run.sandbox.lesson)
        except LessonNotFound:
            lesson = None
        if lesson is not None:
            progress_record_run(user=run.sandbox.owner, lesson=lesson, experiment=run.experiment)
        _run_end_kept(run, since, RunState.DONE, result=reply.get("result"))
    else:
        _run_end_kept(
            run, since, RunState.FAILED, error=str(reply.get("error") or "The experiment failed.")
        )


@shared_task
def sandboxes_reconcile() -> int:
    """Record sandboxes whose supervisor has ended (deadline, idle, lost worker); return how many."""
    ended = 0
    grace = timezone.now() - timedelta(seconds=SPAWN_TIMEOUT_S + 10)
    for sandbox in Sandbox.objects.filter(state__in=ACTIVE_STATES):
        if sandbox.state == SandboxState.STARTING and sandbox.created_at > grace:
            continue  # Still within its start-up time.
        if client.is_alive(sandbox.id):
            continue
        status = client.status(sandbox.id) or {}
        state = status.get("state")
        if state not in (SandboxState.STOPPED, SandboxState.FAILED, SandboxState.EXPIRED):
            state = (
                SandboxState.STOPPED
                if sandbox.state == SandboxState.STOPPING
                else SandboxState.FAILED
            )
        reason = status.get("reason") or (
            ""
            if state == SandboxState.STOPPED
            else "The sandbox's supervisor is gone (its worker stopped)."
        )
        _end(sandbox.id, state, reason)
        ended += 1
    ended_runs = _runs_overdue()
    _runs_undispatched()
    # Live pools replace warm sandboxes that failed; ended ones stop what nobody took.
    pools = WarmPool.objects.filter(
        Q(until__gt=timezone.now())
        | Q(
            sandboxes__taken_at__isnull=True,
            sandboxes__state__in=(SandboxState.STARTING, SandboxState.RUNNING),
        )
    )
    for pool_id in pools.values_list("id", flat=True).distinct():
        services.warm_pool_fill(pool_id=pool_id)
    services.warm_orphans_stop()
    return ended + ended_runs


def _runs_overdue() -> int:
    """Fail runs of live sandboxes whose end was never heard (a lost event); return how many."""
    now = timezone.now()
    failed = 0
    for run in Run.objects.select_related("sandbox").filter(
        state=RunState.RUNNING, sandbox__state=SandboxState.RUNNING
    ):
        limit = _run_timeout(run.sandbox.lesson, run.experiment) + RUN_MARGIN_S
        if run.started_at and (now - run.started_at).total_seconds() > limit:
            _run_end(run, RunState.FAILED, error="The run's end was never heard from its sandbox.")
            failed += 1
    return failed


def _runs_undispatched() -> None:
    """Hand over runs of running sandboxes that no task handed over (its message was lost)."""
    since = timezone.now() - timedelta(seconds=UNDISPATCHED_GRACE_S)
    for run_id in Run.objects.filter(
        state=RunState.QUEUED,
        dispatched_at__isnull=True,
        created_at__lt=since,
        sandbox__state=SandboxState.RUNNING,
    ).values_list("id", flat=True):
        run_execute_task(run_id)  # hands over any older one first; a no-op for one handed meanwhile


@shared_task
def broker_sweep() -> list[str]:
    """Delete RabbitMQ streams of sandboxes that are gone (streams refuse x-expires)."""
    from sandbox_services.broker.sweeper import sweep_orphan_streams

    return sweep_orphan_streams(settings.AMQP_URL, client.is_alive, redis_url=settings.REDIS_URL)


def _end(sandbox_id: str, state: str, reason: str) -> None:
    Sandbox.objects.filter(id=sandbox_id, state__in=ACTIVE_STATES).update(
        state=state, reason=reason, stopped_at=timezone.now()
    )
    sandbox = Sandbox.objects.get(id=sandbox_id)
    for run in sandbox.runs.filter(state__in=(RunState.QUEUED, RunState.RUNNING)):
        _run_end(
            run,
            RunState.FAILED,
            error=f"The sandbox {sandbox.state} while the run was in progress.",
        )
    events.sandbox_changed(sandbox)


def _run_end_kept(run: Run, since: int, state: str, *, result=None, error: str = "") -> None:
    # Spans first, so a page that hears the run ended can replay it at once.
    traces.run_trace_keep(run=run, since=since)
    _run_end(run, state, result=result, error=error)


def _run_end(run: Run, state: str, *, result=None, error: str = "") -> None:
    run.state, run.result, run.error, run.finished_at = state, result, error, timezone.now()
    run.save(update_fields=["state", "result", "error", "finished_at"])
    events.run_changed(run)


def _run_timeout(lesson: str, experiment: str) -> float:
    try:
        lab = importlib.import_module(lab_module_name(lesson)).LAB
        return lab.experiment(experiment).timeout_s + RUN_MARGIN_S
    except (ImportError, AttributeError, KeyError):
        return 60.0 + RUN_MARGIN_S
