"""Writes about people: guests, sign-up, and the users scripts create."""

import secrets

from django.contrib.auth import get_user_model, login
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from .models import Profile, Role

User = get_user_model()
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def user_for_request(request: HttpRequest) -> AbstractBaseUser:
    """Return the signed-in user, or make a guest bound to this browser session."""
    if request.user.is_authenticated:
        return request.user
    with transaction.atomic():
        user = User.objects.create_user(username=f"guest-{secrets.token_hex(6)}")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        Profile.objects.create(user=user, role=Role.GUEST)
    login(request, user, backend=MODEL_BACKEND)
    return user


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
