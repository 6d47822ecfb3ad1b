from django.apps import AppConfig


class CurriculumConfig(AppConfig):
    name = "lab.curriculum"
    # The database tables were created under the app's first name; the label keeps them.
    label = "catalog"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the lesson check)
