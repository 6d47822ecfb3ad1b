"""A learner's progress: which steps they finished and which checkpoints they passed."""

from django.conf import settings
from django.db import models


class Progress(models.Model):
    """One finished step (checkpoint empty) or one passed checkpoint."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="progress"
    )
    lesson = models.SlugField(max_length=50)
    step = models.CharField(max_length=50)
    checkpoint = models.CharField(max_length=50, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "lesson", "step", "checkpoint"], name="progress_once"
            )
        ]
        indexes = [models.Index(fields=["user", "lesson"])]
