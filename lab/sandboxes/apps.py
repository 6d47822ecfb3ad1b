from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    name = "lab.sandboxes"
    label = "sandboxes"
