from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lab.classroom"
    label = "classroom"

    def ready(self) -> None:
        # Connect the receivers that push changes to the cohorts' class views.
        from . import signals  # noqa: F401
