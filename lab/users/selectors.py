"""Reads about people: roles and who may see whose work."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from .models import Profile, Role


def role_of(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Return the user's role, or None for an anonymous visitor."""
    if not user.is_authenticated:
        return None
    try:
        return user.profile.role
    except Profile.DoesNotExist:
        # Superusers made with createsuperuser have no profile; they teach.
        return Role.INSTRUCTOR if user.is_superuser else Role.LEARNER


def is_instructor(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.INSTRUCTOR


def is_guest(user: AbstractBaseUser | AnonymousUser) -> bool:
    return role_of(user) == Role.GUEST


def can_watch(viewer: AbstractBaseUser | AnonymousUser, owner_id: int) -> bool:
    """Tell whether ``viewer`` may see the work of the user ``owner_id`` (read-only)."""
    if not viewer.is_authenticated:
        return False
    return viewer.pk == owner_id or is_instructor(viewer)
