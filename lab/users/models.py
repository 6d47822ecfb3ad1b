"""Roles of the people who use the lab, and the cohorts instructors teach."""

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    GUEST = "guest", "Guest"
    LEARNER = "learner", "Learner"
    INSTRUCTOR = "instructor", "Instructor"


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.LEARNER)
    # The client address a guest was made from: guests are capped per address.
    created_from = models.GenericIPAddressField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user.username} ({self.role})"


class Cohort(models.Model):
    """A class: the learners one or more instructors watch together."""

    name = models.CharField(max_length=120, unique=True)
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="cohorts_taught")
    learners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="cohorts", blank=True)

    def __str__(self) -> str:
        return self.name
