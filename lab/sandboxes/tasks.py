"""Celery tasks: start and stop sandboxes, run experiments, notice sandboxes that ended."""

import importlib
import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from lab.curriculum.lessons import lab_module_name
from lab.curriculum.selectors import LessonNotFound, lesson_get
from lab.curriculum.services import progress_record_run
from sandbox_services.runtime import client

from . import events, traces
from .models import ACTIVE_STATES, Run, RunState, Sandbox, SandboxState

log = logging.getLogger(__name__)
SPAWN_TIMEOUT_S = 20.0
RUN_MARGIN_S = 30.0
# A service flushes its spans on its own thread: copy a run's spans again this
# long after it ended, for the ones still on their way then.
LATE_SPANS_S = 3.0


@shared_task(bind=True)
def sandbox_start_task(self, sandbox_id: str) -> None:
    """Ask this worker's sandbox host to start the sandbox, then record what happened."""
    sandbox = Sandbox.objects.filter(id=sandbox_id).first()
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
            idle_timeout_s=settings.LAB_SANDBOX_IDLE_TIMEOUT,
            timeout_s=SPAWN_TIMEOUT_S,
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
    """Tell the supervisor to stop everything, then record the sandbox as stopped."""
    try:
        client.command(sandbox_id, "stop", timeout_s=15.0)
    except client.SandboxGone:
        pass  # Already gone: the result is the same.
    except client.SandboxError as error:
        log.warning("stopping sandbox %s: %s", sandbox_id, error)
    # Keep the reason the stop was asked with (another lesson's sandbox took its place).
    reason = Sandbox.objects.filter(id=sandbox_id).values_list("reason", flat=True).first()
    _end(sandbox_id, SandboxState.STOPPED, reason or "Stopped from the lesson page.")


@shared_task
def run_execute_task(run_id: str) -> None:
    """Run one experiment in its sandbox and keep the result."""
    run = Run.objects.select_related("sandbox", "sandbox__owner").filter(id=run_id).first()
    if run is None or run.state != RunState.QUEUED:
        return
    if run.sandbox.state != SandboxState.RUNNING:
        _run_end(run, RunState.FAILED, error=f"The sandbox is {run.sandbox.state}.")
        return
    run.state, run.started_at = RunState.RUNNING, timezone.now()
    run.save(update_fields=["state", "started_at"])
    events.run_changed(run)
    # The run's spans come after this sequence number (the status may lag: a lower bound).
    since = int(client.status(run.sandbox_id).get("seq") or 0)
    try:
        _execute(run, since)
    finally:
        run_trace_keep_task.apply_async((run.id, since), countdown=LATE_SPANS_S)


@shared_task
def run_trace_keep_task(run_id: str, since: int = 0) -> None:
    """Copy a run's late spans from its sandbox, if it still runs, beside the ones kept."""
    run = Run.objects.filter(id=run_id).first()
    if run is not None:
        traces.run_trace_keep(run=run, since=since)


def _execute(run: Run, since: int) -> None:
    try:
        reply = client.command(
            run.sandbox_id,
            "run",
            run_id=run.id,
            experiment=run.experiment,
            params=run.params,
            timeout_s=_run_timeout(run.sandbox.lesson, run.experiment),
        )
    except client.SandboxGone:
        _run_end_kept(
            run, since, RunState.FAILED, error="The sandbox stopped while the run was in progress."
        )
        return
    except client.SandboxError as error:
        _run_end_kept(run, since, RunState.FAILED, error=str(error))
        return
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
    return ended


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
