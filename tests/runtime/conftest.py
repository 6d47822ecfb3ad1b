"""Fixtures that run the real sandbox runtime: a host process and a worker heartbeat.

The host starts in its own session, so its process group holds every
supervisor, service and runner it forks: ending the group ends them all, even
when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Database 1: tests never meet a development lab on database 0.
os.environ["REDIS_URL"] = os.environ.get("LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ["LAB_KEEPALIVE_SECONDS"] = "3"
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-runtime-test"))

import redis  # noqa: E402

from sandbox_services.runtime import client, keys  # noqa: E402

KEEPALIVE_S = 3.0


def wait_until(predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def process_gone(pid: int) -> bool:
    """Tell whether a pid no longer exists at all (a zombie still counts as present)."""
    return not Path(f"/proc/{pid}").exists()


@dataclass
class RunningHost:
    """A host process for one fake worker, plus the heartbeat a Celery worker would keep."""

    name: str
    process: subprocess.Popen
    redis: redis.Redis
    beating: threading.Event = field(default_factory=threading.Event)
    sandboxes: list[str] = field(default_factory=list)

    def stop_heartbeat(self) -> None:
        """Stop refreshing the worker heartbeat and delete it, as a dead worker would."""
        self.beating.clear()
        self.redis.delete(keys.worker_alive(self.name))

    def spawn(
        self, *, idle_timeout_s: float = 60.0, lifetime_s: float = 120.0, lesson: str = "selftest"
    ) -> tuple[str, dict]:
        """Start a sandbox on this host; return its id and the spawn reply."""
        sandbox_id = uuid.uuid4().hex
        self.sandboxes.append(sandbox_id)
        reply = client.spawn(
            host=self.name,
            sandbox_id=sandbox_id,
            lesson=lesson,
            hard_deadline=time.time() + lifetime_s,
            idle_timeout_s=idle_timeout_s,
            timeout_s=20,
        )
        return sandbox_id, reply


def _heartbeat(host: RunningHost, stop: threading.Event) -> None:
    key = keys.worker_alive(host.name)
    while not stop.wait(KEEPALIVE_S / 3):
        if host.beating.is_set():
            host.redis.set(key, 1, px=int(KEEPALIVE_S * 1000))


def _start_host(extra_env: dict[str, str] | None = None) -> tuple[RunningHost, threading.Event]:
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    name = f"test-{uuid.uuid4().hex[:8]}"
    connection.set(keys.worker_alive(name), 1, px=int(KEEPALIVE_S * 1000))
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox_services.runtime.host", "--name", name],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    host = RunningHost(name, process, connection)
    host.beating.set()
    stop = threading.Event()
    threading.Thread(target=_heartbeat, args=(host, stop), daemon=True).start()
    return host, stop


def _end_host(host: RunningHost, stop: threading.Event) -> None:
    stop.set()
    for sandbox_id in host.sandboxes:
        if client.is_alive(sandbox_id):
            try:
                client.command(sandbox_id, "stop", timeout_s=10)
            except client.SandboxError:
                pass
    if host.process.poll() is None:
        host.process.send_signal(signal.SIGTERM)
        try:
            host.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever is left of the host's process group
        os.killpg(host.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    host.process.wait()
    host.redis.delete(keys.worker_alive(host.name))


@contextlib.contextmanager
def running_host(extra_env: dict[str, str] | None = None) -> Iterator[RunningHost]:
    """Run a host (and its worker heartbeat) for the block; end it and all it forked after."""
    host, stop = _start_host(extra_env)
    try:
        yield host
    finally:
        _end_host(host, stop)


@pytest.fixture(scope="module")
def shared_host() -> Iterator[RunningHost]:
    """One host for the tests of a module that leave it running."""
    host, stop = _start_host()
    try:
        yield host
    finally:
        _end_host(host, stop)


@pytest.fixture
def fresh_host() -> Iterator[RunningHost]:
    """A host of the test's own, for tests that kill it or silence its worker."""
    host, stop = _start_host()
    try:
        yield host
    finally:
        _end_host(host, stop)


@pytest.fixture
def host_with_env() -> Iterator[Callable[[dict[str, str]], RunningHost]]:
    """Start hosts with extra environment variables; end them all afterwards."""
    started: list[tuple[RunningHost, threading.Event]] = []

    def start(extra_env: dict[str, str]) -> RunningHost:
        started.append(_start_host(extra_env))
        return started[-1][0]

    try:
        yield start
    finally:
        for host, stop in started:
            _end_host(host, stop)
