"""Sandboxes (a learner's live services for one lesson) and the experiment runs in them."""

import uuid

from django.conf import settings
from django.db import models


def new_id() -> str:
    return uuid.uuid4().hex


class SandboxState(models.TextChoices):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE_STATES = (SandboxState.STARTING, SandboxState.RUNNING, SandboxState.STOPPING)
ENDED_STATES = (SandboxState.STOPPED, SandboxState.FAILED, SandboxState.EXPIRED)


class WarmPool(models.Model):
    """Sandboxes an instructor had started ahead of a class, for its learners to take.

    A class arriving at once would otherwise start every sandbox at once, on a
    machine that can only start a few a second; a warm sandbox is already
    running, and a learner's start only hands it over. Each of ``size`` learners
    of the cohort takes one; the pool keeps the untaken ones running until
    ``until``, then stops them.
    """

    cohort = models.ForeignKey(
        "accounts.Cohort", on_delete=models.CASCADE, related_name="warm_pools"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    lesson = models.SlugField(max_length=50)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    until = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]


class Sandbox(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sandboxes"
    )
    lesson = models.SlugField(max_length=50)
    state = models.CharField(
        max_length=16, choices=SandboxState.choices, default=SandboxState.STARTING
    )
    reason = models.TextField(blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    services = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    # Started for a warm pool: owned by the pool's keeper until a learner takes it
    # (taken_at), then by that learner.
    warm_pool = models.ForeignKey(
        WarmPool, on_delete=models.SET_NULL, null=True, blank=True, related_name="sandboxes"
    )
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state"]), models.Index(fields=["owner", "lesson"])]
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Run(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="runs")
    experiment = models.CharField(max_length=50)
    params = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Handed to the sandbox's supervisor (or failed there and then, for want of
    # one): runs are handed over oldest first, once (tasks.run_execute_task).
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class RunTrace(models.Model):
    """A run's spans, copied out of the sandbox when the run ends.

    Kept in the database beside the run rather than in Redis: a run outlives
    its sandbox (the page lists the runs of sandboxes long gone), and replaying
    or exporting a run must work as long as the run is listed. A run's spans are
    read only whole (replay, export), so one JSON list is enough.
    """

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="trace")
    spans = models.JSONField(default=list, blank=True)
    # More spans than MAX_KEPT_SPANS were recorded; the first ones are kept.
    truncated = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)
