"""A sandbox past its hard deadline ends itself, and the lab records it as expired."""

import time

from lab.sandboxes.models import Run, Sandbox
from lab.sandboxes.tasks import sandboxes_reconcile
from sandbox_services.runtime import client

from .helpers import LESSON, api_for, descendants, is_zombie, pid_alive, service_pids, wait_state


def test_a_sandbox_expires_at_its_hard_deadline_and_is_recorded(live_lab, make_user, settings):
    settings.LAB_SANDBOX_HARD_DEADLINE = 4
    _user, token = make_user()
    api = api_for(token)
    sandbox_id = api.post("/api/sandboxes/", {"lesson": LESSON}, format="json").json()["id"]
    wait_state(api, sandbox_id, {"running"})
    status = client.status(sandbox_id)
    pids = descendants([status["pid"], *service_pids(status["services"])])
    queued = Run.objects.create(sandbox_id=sandbox_id, experiment="one-call", state="running")

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and client.is_alive(sandbox_id):
        time.sleep(0.1)
    assert not client.is_alive(sandbox_id)
    # The supervisor reports its end to the worker; the reconciler records it if that was missed.
    sandboxes_reconcile()
    sandbox = Sandbox.objects.get(id=sandbox_id)
    assert sandbox.state == "expired", sandbox.reason
    assert sandbox.reason
    queued.refresh_from_db()
    assert queued.state == "failed" and "expired" in queued.error
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(pid) or is_zombie(pid) for pid in pids):
        time.sleep(0.05)
    assert [pid for pid in pids if pid_alive(pid)] == []
