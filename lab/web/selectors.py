"""Reads that compose pages: the instructor's class view."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from lab.users.models import Role
from lab.curriculum.selectors import lesson_list, progress_for
from lab.sandboxes.selectors import sandbox_list_active

User = get_user_model()


@dataclass
class LessonProgress:
    slug: str
    title: str
    percent: int


@dataclass
class LearnerRow:
    user: AbstractBaseUser
    role: str
    lessons: list[LessonProgress] = field(default_factory=list)
    sandboxes: list = field(default_factory=list)


def learners_for_instructor(*, instructor: AbstractBaseUser) -> list[LearnerRow]:
    """Return each learner the instructor watches, with progress per lesson and live sandboxes.

    An instructor sees the learners of the cohorts they teach, and no one else:
    one who teaches no cohort yet sees an empty class. A superuser, who reads
    every row in the admin anyway, sees every learner and every guest who has
    started something.
    """
    if instructor.is_superuser:
        users = User.objects.filter(
            Q(profile__role=Role.LEARNER)
            | Q(profile__role=Role.GUEST, progress__isnull=False)
            | Q(profile__role=Role.GUEST, sandboxes__isnull=False)
        )
    else:
        users = User.objects.filter(cohorts__instructors=instructor)
    users = users.distinct().select_related("profile").order_by("username")
    lessons = lesson_list()
    active = {}
    for sandbox in sandbox_list_active().order_by("created_at"):
        active.setdefault(sandbox.owner_id, []).append(sandbox)
    titles = {lesson.slug: lesson.title for lesson in lessons}
    rows = []
    for user in users:
        row = LearnerRow(
            user=user, role=getattr(getattr(user, "profile", None), "role", Role.LEARNER)
        )
        for lesson in lessons:
            percent = progress_for(user=user, lesson=lesson)["percent"]
            row.lessons.append(
                LessonProgress(slug=lesson.slug, title=lesson.title, percent=percent)
            )
        for sandbox in active.get(user.pk, []):
            sandbox.lesson_title = titles.get(sandbox.lesson, sandbox.lesson)
            row.sandboxes.append(sandbox)
        rows.append(row)
    return rows
