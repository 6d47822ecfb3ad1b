"""Writes about people: guests, sign-up, and the users scripts create."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from .models import Profile, Role

User = get_user_model()
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class GuestLimitReached(Exception):
    """This client address made its share of guests in the last hour."""


def guest_create(*, client_address: str | None) -> AbstractBaseUser:
    """Make a guest (no name, no password) for a visitor who asked for one.

    Only the "Try as a guest" form calls this: a POST that passed the CSRF
    check. At most LAB_GUESTS_PER_ADDRESS_PER_HOUR guests come from one address.
    """
    since = timezone.now() - timedelta(hours=1)
    with transaction.atomic():
        recent = Profile.objects.filter(
            role=Role.GUEST, created_from=client_address, user__date_joined__gte=since
        ).count()
        if recent >= settings.LAB_GUESTS_PER_ADDRESS_PER_HOUR:
            raise GuestLimitReached(
                "Too many guests from your address in the last hour: sign up, or try again later."
            )
        user = User.objects.create_user(username=f"guest-{secrets.token_hex(6)}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        Profile.objects.create(user=user, role=Role.GUEST, created_from=client_address)
    return user


def guests_expire(*, max_age_s: float) -> int:
    """Delete guests older than ``max_age_s`` with no live sandbox; return how many.

    A guest is made for one visit; their sandboxes, runs and progress go with
    them (the foreign keys cascade). A guest who signed up is a learner and
    stays; so does one who joined a cohort, whose instructor follows them.
    """
    from lab.sandboxes.models import ACTIVE_STATES

    cutoff = timezone.now() - timedelta(seconds=max_age_s)
    expired = list(
        User.objects.filter(profile__role=Role.GUEST, date_joined__lt=cutoff)
        .exclude(sandboxes__state__in=ACTIVE_STATES)
        .exclude(cohorts__isnull=False)
        .values_list("pk", flat=True)
    )
    User.objects.filter(pk__in=expired).delete()
    return len(expired)


def guest_convert(*, user: AbstractBaseUser, username: str, password: str) -> AbstractBaseUser:
    """Turn a guest into a learner with a name and password, keeping their progress."""
    with transaction.atomic():
        user.username = username
        user.set_password(password)
        user.save(update_fields=["username", "password"])
        Profile.objects.update_or_create(user=user, defaults={"role": Role.LEARNER})
    return user


def learner_create(*, username: str, password: str) -> AbstractBaseUser:
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password)
        Profile.objects.create(user=user, role=Role.LEARNER)
    return user


def labuser_upsert(
    *, username: str, role: str, password: str | None = None
) -> tuple[AbstractBaseUser, str]:
    """Create or update a user with ``role``; return it and its API token key."""
    if role not in (Role.LEARNER, Role.INSTRUCTOR):
        raise ValueError(f"role must be learner or instructor, not {role!r}")
    if password:
        # The same validators as sign-up (AUTH_PASSWORD_VALIDATORS).
        candidate = User.objects.filter(username=username).first() or User(username=username)
        try:
            validate_password(password, candidate)
        except ValidationError as error:
            raise ValueError("password refused: " + " ".join(error.messages)) from None
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        elif created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Profile.objects.update_or_create(user=user, defaults={"role": role})
        token, _ = Token.objects.get_or_create(user=user)
    return user, token.key
