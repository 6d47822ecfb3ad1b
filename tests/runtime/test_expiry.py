"""A sandbox never outlives its deadline, its idle timeout, its worker or its host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import redis

from sandbox_services.runtime import client, keys
from sandbox_services.runtime.supervisor import HEARTBEAT_INTERVAL_S

from .conftest import KEEPALIVE_S, ROOT, process_gone, wait_until


def fresh_redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def sandbox_pids(sandbox_id: str) -> list[int]:
    """Return the pids of the supervisor, its metrics process and every service process."""
    client.watch(sandbox_id, "test", 60)  # the metrics process runs while someone watches
    current = wait_until(lambda: (found := client.status(sandbox_id))["metrics_pid"] and found, 5)
    services = [
        instance["pid"]
        for entry in current["services"].values()
        for instance in entry["instances"]
        if instance["pid"]
    ]
    return [current["pid"], current["metrics_pid"], *services]


def ended(sandbox_id: str) -> dict | None:
    current = client.status(sandbox_id)
    return current if current["state"] in {"expired", "stopped", "failed"} else None


def _hold(sandbox_id: str) -> None:
    try:
        client.command(
            sandbox_id,
            "run",
            run_id="hold",
            experiment="hold",
            params={"seconds": 30},
            timeout_s=KEEPALIVE_S,
        )
    except client.SandboxError:
        pass  # the sandbox is gone: what this test is about


def test_sigkill_of_the_host_ends_every_process_within_the_keepalive(fresh_host):
    first, _ = fresh_host.spawn()
    second, _ = fresh_host.spawn()
    holding = threading.Thread(target=_hold, args=(first,))
    holding.start()
    runner = wait_until(lambda: client.status(first)["runner_pids"], 5)
    pids = sandbox_pids(first) + sandbox_pids(second) + runner
    os.kill(fresh_host.process.pid, signal.SIGKILL)
    fresh_host.process.wait()
    wait_until(lambda: all(process_gone(pid) for pid in pids), KEEPALIVE_S)
    assert not client.is_alive(first) and not client.is_alive(second)
    holding.join(2 * KEEPALIVE_S)


def test_silent_worker_heartbeat_ends_the_sandbox_and_the_host(fresh_host):
    sandbox_id, _ = fresh_host.spawn()
    pids = sandbox_pids(sandbox_id)
    fresh_host.stop_heartbeat()
    # Heard missing at a heartbeat, ended at the first beat a keep-alive later.
    final = wait_until(lambda: ended(sandbox_id), 2 * KEEPALIVE_S + 2 * HEARTBEAT_INTERVAL_S + 2)
    assert final["state"] in {"expired", "stopped"}
    wait_until(lambda: all(process_gone(pid) for pid in pids), KEEPALIVE_S)
    assert fresh_host.process.wait(KEEPALIVE_S) == 0


def test_sandbox_without_touch_expires_as_idle(shared_host):
    # Spawned with a long timeout (a warm pool's), then touched with a short one (the
    # learner's who took it): the short one runs out, and the reason names it.
    sandbox_id, _ = shared_host.spawn(idle_timeout_s=600)
    touched_until = time.monotonic() + HEARTBEAT_INTERVAL_S + 0.5  # a heartbeat sees a touch
    while time.monotonic() < touched_until:  # activity keeps it alive past its idle timeout
        client.touch(sandbox_id, 1.5)
        time.sleep(0.3)
    assert client.is_alive(sandbox_id)
    # Noticed at the supervisor's next heartbeat after the timeout.
    final = wait_until(lambda: ended(sandbox_id), 1.5 + HEARTBEAT_INTERVAL_S + 1.5)
    assert final["state"] == "expired" and final["reason"] == "no activity for 1.5 s"
    assert not client.is_alive(sandbox_id)
    # Its status stays readable for a while, then vanishes on its own.
    assert 0 < fresh_redis().ttl(keys.sandbox_status(sandbox_id)) <= 3600


def test_sandbox_expires_at_its_hard_deadline(shared_host):
    sandbox_id, _ = shared_host.spawn(lifetime_s=2.0)
    final = wait_until(lambda: ended(sandbox_id), 5)
    assert final["state"] == "expired" and "time limit" in final["reason"]


ATTACH_SCRIPT = """
import sys, time
from sandbox_services.runtime.worker import attach
attach(sys.argv[1])
print("attached", flush=True)
time.sleep(120)
"""


def test_attached_worker_starts_a_host_that_dies_with_it(tmp_path):
    name = f"attach-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-c", ATTACH_SCRIPT, name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert worker.stdout.readline().strip() == "attached"
        sandbox_id = uuid.uuid4().hex
        reply = client.spawn(
            host=name,
            sandbox_id=sandbox_id,
            lesson="selftest",
            hard_deadline=time.time() + 60,
            idle_timeout_s=60,
            timeout_s=20,
        )
        assert reply["state"] == "running"
        pids = sandbox_pids(sandbox_id)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        wait_until(lambda: all(process_gone(pid) for pid in pids), KEEPALIVE_S)
    finally:
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.wait()
