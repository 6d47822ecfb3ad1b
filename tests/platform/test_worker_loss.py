"""Killing a worker leaves no orphan or zombie sandbox processes."""

import os
import signal
import time

import pytest
from django.utils import timezone

from lab.sandboxes.models import Sandbox
from lab.sandboxes.tasks import sandbox_start_task
from sandbox_services.runtime import client

from lab.harness import LabProcesses, wait_for
from .helpers import LESSON, descendants, is_zombie, pid_alive, service_pids


@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_ends_its_sandboxes_within_the_keepalive(
    lab_processes, make_user, settings
):
    user, _token = make_user(role="learner")
    doomed = LabProcesses(lab_processes.database_name, lab_processes.log_dir)
    queue = f"doomed-{os.getpid()}"
    worker = doomed.start_worker("doomed", queue=queue)
    try:
        sandbox = Sandbox.objects.create(
            owner=user, lesson=LESSON, expires_at=timezone.now() + timezone.timedelta(minutes=10)
        )
        sandbox_start_task.apply_async(args=[sandbox.id], queue=queue)
        wait_for(
            lambda: Sandbox.objects.get(id=sandbox.id).state != "starting", 40, "sandbox start"
        )
        assert Sandbox.objects.get(id=sandbox.id).state == "running"
        status = client.status(sandbox.id)
        pids = descendants([status["pid"], *service_pids(status["services"])])
        assert len(pids) >= 2, "a supervisor and its services"

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(5)
        keepalive = float(os.environ["LAB_KEEPALIVE_SECONDS"])
        deadline = time.monotonic() + keepalive + 10
        # Gone means reaped too: a zombie still holds its /proc entry.
        while time.monotonic() < deadline and any(pid_alive(pid) or is_zombie(pid) for pid in pids):
            time.sleep(0.1)
        assert [pid for pid in pids if pid_alive(pid)] == []
        assert [pid for pid in pids if is_zombie(pid)] == []
    finally:
        doomed.stop()
