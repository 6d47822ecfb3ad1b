"""Celery tasks about people: guests expire with their sandboxes."""

from celery import shared_task
from django.conf import settings

from .services import guests_expire


@shared_task
def guests_expire_task() -> int:
    """Delete guests past LAB_GUEST_MAX_AGE that have no live sandbox; return how many."""
    return guests_expire(max_age_s=settings.LAB_GUEST_MAX_AGE)
