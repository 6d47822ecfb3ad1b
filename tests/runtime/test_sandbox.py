"""A sandbox of the selftest lab: start, services, learner operations, experiment runs."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from sandbox_services.runtime import client, keys
from sandbox_services.runtime.probe import grpc_health_once, http_health_once
from sandbox_services.runtime.service_processes import _has_exited, _is_exiting

from .conftest import process_gone, wait_until


def healthy(protocol: str, port: int) -> bool:
    check = http_health_once if protocol == "http" else grpc_health_once
    return asyncio.run(check(port, 1.0))


def service(sandbox_id: str, name: str, op: str, **params) -> dict:
    return client.command(sandbox_id, "service", service=name, op=op, **params)["services"][name]


def run(sandbox_id: str, experiment: str, **params) -> dict:
    return client.command(
        sandbox_id,
        "run",
        run_id=os.urandom(4).hex(),
        experiment=experiment,
        params=params,
        timeout_s=30,
    )


@pytest.fixture(scope="module")
def sandbox(shared_host) -> str:
    sandbox_id, _ = shared_host.spawn()
    return sandbox_id


def test_spawn_answers_running_with_every_service_healthy(shared_host):
    sandbox_id, reply = shared_host.spawn()
    services = reply["services"]
    assert reply["state"] == "running"
    assert set(services) == {"echo", "greeter", "listener"}
    assert all(entry["state"] == "running" and entry["pid"] for entry in services.values())
    assert healthy("http", services["echo"]["port"])
    assert healthy("grpc", services["greeter"]["port"])
    assert services["listener"]["port"] is None
    assert client.is_alive(sandbox_id)
    assert client.status(sandbox_id)["state"] == "running"


def test_unknown_lesson_is_a_clear_spawn_error(shared_host):
    with pytest.raises(client.SandboxError, match="no-such-lesson"):
        shared_host.spawn(lesson="no-such-lesson")


def test_stopped_service_keeps_its_port_when_started_again(sandbox):
    before = client.status(sandbox)["services"]["echo"]
    stopped = service(sandbox, "echo", "stop")
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    assert not healthy("http", before["port"])
    started = service(sandbox, "echo", "start")
    assert started["state"] == "running"
    assert started["port"] == before["port"] and started["pid"] != before["pid"]
    assert healthy("http", started["port"])


def test_killed_service_shows_crashed_with_its_exit_code(sandbox):
    killed = service(sandbox, "greeter", "kill")
    assert killed["state"] == "crashed" and killed["exit_code"] == -9
    assert client.status(sandbox)["services"]["greeter"]["state"] == "crashed"
    assert service(sandbox, "greeter", "restart")["state"] == "running"


def test_start_of_a_running_service_changes_nothing(sandbox):
    before = client.status(sandbox)["services"]["echo"]
    after = service(sandbox, "echo", "start")
    assert after["state"] == "running" and after["pid"] == before["pid"]


def test_start_right_after_a_crash_starts_the_service_again(sandbox):
    before = client.status(sandbox)["services"]["echo"]
    # As a consumer's simulated crash: the process dies on its own, nobody asked, and
    # the caller starts it as soon as its port stops answering.
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(lambda: not healthy("http", before["port"]), 5, interval_s=0)
    started = service(sandbox, "echo", "start")
    assert started["state"] == "running" and started["pid"] != before["pid"]
    assert healthy("http", started["port"])
    assert client.status(sandbox)["state"] == "running"


def test_a_process_on_its_way_out_counts_as_exited():
    # Between a kill closing a process's port and its zombie, only the kernel's
    # PF_EXITING flag tells (the start above read it). A zombie's exit has run to
    # its end, so its flag is set; a live process's is not.
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_until(lambda: process_state(finished.pid) == "Z", 10)
        assert _is_exiting(finished.pid) and _has_exited(finished.pid)
        assert not _is_exiting(alive.pid) and not _has_exited(alive.pid)
        assert not _is_exiting(os.getpid())
    finally:
        alive.kill()
        alive.wait()
        finished.wait()


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_status_tells_a_hung_process_from_an_exited_one_and_changes_nothing(sandbox):
    # A failed health check is not an exit (the saga's crash experiment once took one for
    # it on a loaded machine): "status" is the supervisor's own view of its processes.
    before = client.status(sandbox)["services"]["echo"]
    os.kill(before["pid"], signal.SIGSTOP)  # alive, answering nothing
    try:
        assert not healthy("http", before["port"])
        seen = service(sandbox, "echo", "status")
        assert seen["state"] == "running" and seen["pid"] == before["pid"]
    finally:
        os.kill(before["pid"], signal.SIGCONT)
    os.kill(before["pid"], signal.SIGKILL)
    wait_until(lambda: service(sandbox, "echo", "status")["state"] == "crashed", 5)
    assert service(sandbox, "echo", "start")["state"] == "running"


def test_scale_runs_each_replica_on_its_own_port(sandbox):
    scaled = service(sandbox, "echo", "scale", replicas=2)
    ports = [instance["port"] for instance in scaled["instances"]]
    assert scaled["state"] == "running" and len(set(ports)) == 2
    assert all(healthy("http", port) for port in ports)
    shrunk = service(sandbox, "echo", "scale", replicas=1)
    assert shrunk["instances"][1]["state"] == "stopped"
    assert not healthy("http", ports[1])


def test_refused_operation_raises_with_the_reason(sandbox):
    with pytest.raises(client.SandboxError, match="1 to 3 replicas"):
        service(sandbox, "echo", "scale", replicas=9)
    with pytest.raises(client.SandboxError, match="no service named"):
        service(sandbox, "nope", "stop")


def test_experiment_exception_is_a_failed_run_not_a_crash(sandbox):
    outcome = run(sandbox, "fail")
    assert outcome == {"state": "failed", "error": "ValueError: this experiment fails on purpose"}
    assert run(sandbox, "echo")["state"] == "done"


def test_experiment_past_its_timeout_fails(sandbox):
    outcome = run(sandbox, "sleep", seconds=30)
    assert outcome["state"] == "failed" and "within 1 s" in outcome["error"]
    assert client.is_alive(sandbox)


def test_experiment_controls_services_through_the_supervisor(sandbox):
    outcome = run(sandbox, "control")
    assert outcome["result"]["after_stop"] == "stopped"
    assert outcome["result"]["after_start"] == "running"


def test_fork_runs_functions_in_other_processes(sandbox):
    result = run(sandbox, "fork")["result"]
    worker_pids = {worker["pid"] for worker in result["workers"]}
    assert [worker["sum"] for worker in result["workers"]] == [499500, 45]
    assert len(worker_pids) == 2 and result["runner_pid"] not in worker_pids


def test_stop_ends_the_sandbox_and_its_processes(shared_host):
    sandbox_id, reply = shared_host.spawn()
    pids = [entry["pid"] for entry in reply["services"].values()]
    supervisor = client.status(sandbox_id)["pid"]
    assert client.command(sandbox_id, "stop")["state"] == "stopped"
    assert not client.is_alive(sandbox_id)
    assert client.status(sandbox_id)["state"] == "stopped"
    wait_until(lambda: all(not os.path.exists(f"/proc/{pid}") for pid in [*pids, supervisor]), 5)
    with pytest.raises(client.SandboxGone):
        client.command(sandbox_id, "service", service="echo", op="stop")


def test_fork_after_grpc_use_goes_through_a_clean_zygote(sandbox):
    result = run(sandbox, "greet_then_fork")["result"]
    assert result["first"] == "OK"
    assert result["workers"][0]["answer"] == "hello, worker"
    assert result["workers"][1]["sum"] == 45


def test_service_dying_before_ready_fails_the_spawn_with_its_reason(host_with_env):
    host = host_with_env({"LAB_SELFTEST_BROKEN": "greeter"})
    with pytest.raises(client.SandboxError, match="greeter exited with code 3 before it was ready"):
        host.spawn()
    [sandbox_id] = host.sandboxes
    final = client.status(sandbox_id)
    assert final["state"] == "failed" and "greeter" in final["reason"]
    assert not client.is_alive(sandbox_id)
    wait_until(lambda: process_gone(final["pid"]), 5)


def test_run_in_progress_when_the_sandbox_stops_is_answered_as_failed(shared_host):
    sandbox_id, _ = shared_host.spawn()
    outcome: dict = {}

    def run_long() -> None:
        outcome.update(run(sandbox_id, "hold", seconds=30))

    runner = threading.Thread(target=run_long)
    runner.start()
    wait_until(lambda: client.status(sandbox_id)["runner_pids"], 5)
    client.command(sandbox_id, "stop")
    runner.join(10)
    assert outcome["state"] == "failed" and "without a result" in outcome["error"]


def test_host_drops_a_spawn_request_nobody_waits_for(shared_host):
    sandbox_id = uuid.uuid4().hex
    stale = {
        "sandbox_id": sandbox_id,
        "lesson": "selftest",
        "hard_deadline": time.time() + 60,
        "idle_timeout_s": 60,
        "requested_at": time.time() - 60,
        "answer_by": time.time() - 40,
    }
    shared_host.redis.rpush(keys.host_spawn(shared_host.name), json.dumps(stale))
    # A fresh request queued behind it is served, so the stale one has been seen.
    _, reply = shared_host.spawn()
    assert reply["state"] == "running"
    assert not client.is_alive(sandbox_id)
    assert client.status(sandbox_id)["state"] == "unknown"


def _niceness(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])


def test_services_and_runners_run_below_the_supervisor(sandbox):
    """The workload yields the CPU to the span path (supervisor, Redis, daphne) when it is full."""
    status = client.status(sandbox)
    supervisor = _niceness(status["pid"])
    services = [entry["pid"] for entry in status["services"].values()]
    assert [_niceness(pid) - supervisor for pid in services] == [5, 5, 5]
    holding = threading.Thread(target=run, args=(sandbox, "sleep"), kwargs={"seconds": 0.8})
    holding.start()
    try:
        runners = wait_until(lambda: client.status(sandbox)["runner_pids"], 5)
        assert [_niceness(pid) - supervisor for pid in runners] == [5]
    finally:
        holding.join(10)


def test_a_services_port_is_held_for_the_sandbox_even_while_the_service_is_stopped(sandbox):
    """Nobody else can take a stopped service's port: starting it again never meets EADDRINUSE."""
    port = client.status(sandbox)["services"]["echo"]["port"]
    service(sandbox, "echo", "stop")
    try:
        stranger = socket.socket()
        with pytest.raises(OSError) as refused:
            stranger.bind(("127.0.0.1", port))
        assert refused.value.errno == errno.EADDRINUSE
        stranger.close()
    finally:
        assert service(sandbox, "echo", "start")["state"] == "running"
