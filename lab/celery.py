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
    """Start this worker's warm sandbox host, its heartbeat and its run-event relay.

    Only a worker that takes the control queue starts sandboxes, so only it has
    a host (see docs/architecture.md); a worker of the runs queue alone has none.
    """
    from django.conf import settings

    if set(sender.app.amqp.queues.consume_from) == {settings.CELERY_TASK_DEFAULT_QUEUE}:
        return  # a worker of runs only
    from lab.sandboxes.tasks import relay_start
    from sandbox_services.runtime.worker import attach

    attach(sender.hostname)
    relay_start(sender.hostname)


@worker_ready.connect
def read_lessons(sender=None, **kwargs) -> None:
    """Read the lessons now, not when the first run ends (about half a CPU second)."""
    from lab.curriculum.selectors import lesson_list

    lesson_list()
