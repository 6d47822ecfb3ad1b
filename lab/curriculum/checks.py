"""``manage.py check`` validates every lesson: a broken one names its file and field."""

from django.conf import settings
from django.core import checks

from .lessons import load_all


@checks.register("lessons")
def lessons_check(app_configs, **kwargs):
    lessons, problems = load_all(settings.LAB_LESSONS_DIR)
    errors = [
        checks.Error(
            f"{problem.field}: {problem.message}",
            obj=str(problem.path),
            id="lessons.E001",
        )
        for problem in problems
    ]
    if not lessons and not problems:
        errors.append(
            checks.Warning(f"no lessons found under {settings.LAB_LESSONS_DIR}", id="lessons.W001")
        )
    return errors
