"""Reads about people: roles and who may see whose work."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from .models import Cohort, Profile, Role


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


def teaches(instructor: AbstractBaseUser, learner_id: int) -> bool:
    """Tell whether ``instructor`` teaches a cohort that ``learner_id`` is in."""
    return Cohort.objects.filter(instructors=instructor, learners=learner_id).exists()


def can_watch(viewer: AbstractBaseUser | AnonymousUser, owner_id: int) -> bool:
    """Tell whether ``viewer`` may see the work of the user ``owner_id`` (read-only).

    The owner may; an instructor may only for learners of a cohort they teach;
    a superuser may, since the admin shows them every row anyway.
    """
    if not viewer.is_authenticated:
        return False
    if viewer.pk == owner_id or viewer.is_superuser:
        return True
    return is_instructor(viewer) and teaches(viewer, owner_id)
