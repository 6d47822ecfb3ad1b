"""Celery tasks of the class: apply a pushed scenario, watch for its confirmation, end it."""

from celery import shared_task
from django.utils import timezone

from . import services
from .models import Scenario

CHECK_EVERY_S = 1.0


@shared_task
def scenario_apply_task(scenario_id: int) -> None:
    """Apply a scenario to its sandboxes, then start watching their spans."""
    scenario = Scenario.objects.filter(id=scenario_id, ended_at__isnull=True).first()
    if scenario is None:
        return
    services.scenario_apply(scenario=scenario)
    scenario_watch_task.apply_async((scenario_id,), countdown=CHECK_EVERY_S)


@shared_task
def scenario_watch_task(scenario_id: int) -> None:
    """Look for each sandbox's confirming span; end the scenario when its time is up.

    It schedules itself again rather than waiting, so no worker slot is held
    for the scenario's minutes.
    """
    scenario = Scenario.objects.filter(id=scenario_id, ended_at__isnull=True).first()
    if scenario is None:
        return
    if scenario.ends_at is not None and timezone.now() >= scenario.ends_at:
        services.scenario_reset(scenario=scenario)
        return
    confirmed = services.scenario_confirm(scenario=scenario)
    waiting = scenario.targets.filter(applied=True).count() - confirmed
    # Once every sandbox confirmed, only the end remains: wake up for it.
    countdown = CHECK_EVERY_S
    if waiting <= 0 and scenario.ends_at is not None:
        countdown = max(CHECK_EVERY_S, (scenario.ends_at - timezone.now()).total_seconds())
    scenario_watch_task.apply_async((scenario_id,), countdown=countdown)
