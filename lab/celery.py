"""The lab's Celery application: sandbox start/stop and experiment runs."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")

app = Celery("lab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def start_sandbox_host(sender=None, **kwargs) -> None:
    """Start this worker's warm sandbox host and its heartbeat (see docs/architecture.md)."""
    from sandbox_services.runtime.worker import attach

    attach(sender.hostname)
