"""Reads of lessons and progress."""

import threading

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from .lessons import Lesson, load_all
from .models import Progress

_cache: dict[str, object] = {}
_loading = threading.Lock()


class LessonNotFound(Exception):
    pass


def _lessons() -> list[Lesson]:
    # Lessons are read once per process; in DEBUG a changed file is picked up
    # on the next request, so an author sees an edit on reload.
    if "lessons" in _cache and not settings.DEBUG:
        return _cache["lessons"]  # type: ignore[return-value]
    # One thread reads them, the others wait for it: a fresh Celery worker's eight
    # threads, all ending runs at once, each parsed every lesson (YAML and
    # Markdown, about half a CPU second each), which was most of the worker's CPU
    # while a class of 12 ran its first experiments.
    with _loading:
        directory = settings.LAB_LESSONS_DIR
        stamp = tuple(
            (str(path), path.stat().st_mtime_ns) for path in sorted(directory.glob("*/lesson.md"))
        )
        if _cache.get("stamp") != stamp:
            lessons, _problems = load_all(directory)
            _cache.update(lessons=lessons, stamp=stamp)
        return _cache["lessons"]  # type: ignore[return-value]


def lesson_list() -> list[Lesson]:
    return list(_lessons())


def lesson_get(*, slug: str) -> Lesson:
    for lesson in _lessons():
        if lesson.slug == slug:
            return lesson
    raise LessonNotFound(slug)


def progress_for(*, user: AbstractBaseUser | AnonymousUser, lesson: Lesson) -> dict:
    """Return {"steps": {id: done}, "checkpoints": {id: passed}, "percent": int}."""
    rows = (
        Progress.objects.filter(user=user, lesson=lesson.slug).values_list("step", "checkpoint")
        if user.is_authenticated
        else []
    )
    done_steps = {step for step, checkpoint in rows if not checkpoint}
    passed = {checkpoint for _step, checkpoint in rows if checkpoint}
    steps = {step.id: step.id in done_steps for step in lesson.steps}
    checkpoints = {checkpoint.id: checkpoint.id in passed for checkpoint in lesson.checkpoints}
    total = len(steps) + len(checkpoints)
    finished = sum(steps.values()) + sum(checkpoints.values())
    return {
        "steps": steps,
        "checkpoints": checkpoints,
        "percent": round(100 * finished / total) if total else 0,
    }


def progress_summary(*, user: AbstractBaseUser) -> dict[str, int]:
    """Return percent done per lesson slug for one user."""
    return {lesson.slug: progress_for(user=user, lesson=lesson)["percent"] for lesson in _lessons()}
