"""A cohort's join code, scenarios pushed to a cohort, and learners' predictions."""

import secrets

from django.conf import settings
from django.db import models

from lab.users.models import Cohort

# No 0/O or 1/I/L: a code is read aloud and typed from a projector.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_join_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class CohortCode(models.Model):
    """The code learners type to join a cohort (one per cohort)."""

    cohort = models.OneToOneField(Cohort, on_delete=models.CASCADE, related_name="join_code")
    code = models.CharField(max_length=16, unique=True, default=new_join_code)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.cohort.name}: {self.code}"


class ScenarioAction(models.TextChoices):
    DELAY = "delay", "slow by"
    ERROR = "error", "fail a share of calls"
    STOP = "stop", "stop"


class Scenario(models.Model):
    """A fault an instructor pushed to every running sandbox of a cohort in one lesson."""

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="scenarios")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    lesson = models.SlugField(max_length=50)
    service = models.CharField(max_length=60)
    action = models.CharField(max_length=16, choices=ScenarioAction.choices)
    delay_ms = models.FloatField(default=0)
    error_rate = models.FloatField(default=0)
    duration_s = models.PositiveIntegerField(default=120)
    created_at = models.DateTimeField(auto_now_add=True)
    # Unix epoch nanoseconds when the faults were applied: spans after it confirm them.
    applied_ns = models.BigIntegerField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.ended_at is None

    def describe(self) -> str:
        if self.action == ScenarioAction.DELAY:
            what = f"{self.service} slow by {self.delay_ms:g} ms"
        elif self.action == ScenarioAction.ERROR:
            what = f"{self.service} fails {self.error_rate:.0%} of calls"
        else:
            what = f"stop {self.service}"
        return f"{what} for {self.duration_s // 60} min {self.duration_s % 60} s".replace(
            " 0 s", ""
        ).replace("for 0 min ", "for ")


class ScenarioTarget(models.Model):
    """One learner's sandbox a scenario was applied to, and the span that confirmed it."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="targets")
    learner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    sandbox = models.ForeignKey(
        "sandboxes.Sandbox", on_delete=models.CASCADE, related_name="scenario_targets"
    )
    applied = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    # The highest span seq already read, so each check reads only new spans.
    last_seq = models.BigIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    evidence = models.TextField(blank=True, default="")
    cleared = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scenario", "sandbox"], name="scenario_target_once")
        ]


class Prediction(models.Model):
    """A learner's answer to a predict checkpoint, and its grade against a run."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="predictions"
    )
    lesson = models.SlugField(max_length=50)
    checkpoint = models.CharField(max_length=50)
    # A number, or the index of a choice.
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    run = models.ForeignKey(
        "sandboxes.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    observed = models.FloatField(null=True, blank=True)
    # For a choice: the index of the choice the observed figure falls in.
    observed_choice = models.IntegerField(null=True, blank=True)
    correct = models.BooleanField(null=True, blank=True)
    graded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "lesson", "checkpoint"], name="prediction_once")
        ]

    @property
    def is_graded(self) -> bool:
        return self.graded_at is not None


class QuizAnswer(models.Model):
    """A learner's latest answer to a quiz checkpoint, right or wrong, for the class view."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lesson = models.SlugField(max_length=50)
    checkpoint = models.CharField(max_length=50)
    answer = models.IntegerField()
    passed = models.BooleanField()
    attempts = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "lesson", "checkpoint"], name="quiz_answer_once"
            )
        ]
