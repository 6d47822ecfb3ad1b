from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "lab.catalog"
    label = "catalog"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the lesson check)
