"""Real sandboxes for tests: a host, and a handle over one running sandbox of a lesson.

There is one way to run a sandbox: the real host, supervisor and forked
services, started through ``sandbox_services.runtime.launcher``. Tests reach a
sandbox the way the platform does (commands through Redis) and, for evidence
of their own, its services' ports, its private directory and its spans.

Fixtures (registered in tests/conftest.py):

``sandbox_host`` (module)
    A ``LaunchedHost``: one host process and its worker heartbeat for the
    module; it ends with everything it forked, even when a test fails.
``lesson_sandbox`` (module)
    ``lesson_sandbox(lesson, **settings) -> Sandbox``: a running sandbox of a
    lesson (slug, e.g. "async-messaging") on ``sandbox_host``. Calls with the
    same lesson and settings in one module get the same sandbox, so the tests
    of a module share one start (about half a second); each is stopped (its
    teardown runs) when the module ends. ``settings`` override keys of the
    lesson's ``LabSpec.settings`` for that sandbox only.
``new_sandbox`` (function)
    ``new_sandbox(lesson, **settings) -> Sandbox``: a sandbox of the test's
    own, stopped when the test ends, for tests that break it or stop it.

``start_sandbox(host, lesson, settings=None)`` starts one on any host (a test
that needs a host with its own environment uses ``launch_host(extra_env=...)``).

``Sandbox``:
    ``id``, ``lesson``, ``prefix`` (of its RabbitMQ names), ``workdir`` (its
    private directory: the services' own SQLite files are there),
    ``address(service)`` ("127.0.0.1:PORT" of replica 0), ``addresses(service)``
    (of the running replicas), ``control(action, service, **params)`` (stop,
    start, restart, kill, delay, error, clear, scale, as a learner's fault;
    returns every service's state, raises ``SandboxError`` with the reason when
    refused), ``run(experiment, params)`` (the run's result; ``RunFailed`` if
    the run failed), ``run_reply(experiment, params)`` (the supervisor's reply
    as is), ``states()`` (each service's state, ports and pids),
    ``status()`` (the supervisor's whole status), ``last_seq()`` and
    ``spans(since)`` (its kept spans), ``dump_stacks()`` (every service and
    runner prints its threads' stacks; the tails of their logs are printed),
    ``stop()``.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sandbox_services.runtime import client, keys
from sandbox_services.runtime.client import SandboxError, SandboxGone
from sandbox_services.runtime.launcher import LaunchedHost, launch_host, running_host
from sandbox_services.runtime.plan import load_lab

__all__ = [
    "LaunchedHost",
    "RunFailed",
    "Sandbox",
    "SandboxError",
    "SandboxGone",
    "launch_host",
    "lesson_sandbox",
    "new_sandbox",
    "running_host",
    "sandbox_host",
    "start_sandbox",
    "wait_until",
]

# Longer than any test module: the sandbox must not expire under a slow suite.
LIFETIME_S = 1800.0
SPAWN_TIMEOUT_S = 60.0
RUN_MARGIN_S = 15.0  # over the experiment's own timeout, for the runner's fork and flush
STACK_DUMP_WAIT_S = 0.3
LOG_TAIL_LINES = 60


class RunFailed(AssertionError):
    """An experiment run ended "failed"; the message is the runner's error."""

    def __init__(self, experiment: str, reply: dict) -> None:
        self.reply = reply
        self.error = str(reply.get("error", ""))
        super().__init__(f"run of {experiment!r} failed: {self.error}")


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class Sandbox:
    """A handle over one running sandbox of a lesson on a real host."""

    def __init__(self, host: LaunchedHost, sandbox_id: str, lesson: str, reply: dict) -> None:
        self.host = host
        self.id = sandbox_id
        self.lesson = lesson
        self.prefix = f"lab.{sandbox_id}."
        self.workdir: Path = host.workdir / sandbox_id
        self.services: dict[str, dict] = reply["services"]  # as the spawn reply gave them
        self._lab = load_lab(lesson)

    def __repr__(self) -> str:
        return f"<Sandbox {self.lesson} {self.id}>"

    # -- reading -------------------------------------------------------------

    def status(self) -> dict:
        """Return the supervisor's last status: state, reason, services, pids, seq."""
        return client.status(self.id)

    def states(self) -> dict[str, dict]:
        """Return each service's state, port, pid, replicas, faults and instances."""
        return self.status()["services"]

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of replica 0 of a service."""
        port = self.services[service]["port"]
        if port is None:
            raise LookupError(f"service {service!r} listens on no port")
        return f"127.0.0.1:{port}"

    def addresses(self, service: str) -> list[str]:
        """Return the addresses of the running replicas of a service."""
        return [
            f"127.0.0.1:{instance['port']}"
            for instance in self.states()[service]["instances"]
            if instance["state"] == "running" and instance["port"] is not None
        ]

    def last_seq(self) -> int:
        """Return the seq of the newest span kept so far (0 if none): later spans have higher."""
        newest = self.host.redis.zrange(keys.sandbox_spans(self.id), -1, -1, withscores=True)
        return int(newest[0][1]) if newest else 0

    def spans(self, since: int = 0) -> list[dict]:
        """Return the kept spans with seq > since, oldest first."""
        return client.replay(self.id, since=since, limit=1_000_000)

    # -- acting --------------------------------------------------------------

    def control(self, action: str, service: str, **params: Any) -> dict[str, dict]:
        """Change a service as a learner's fault would; return every service's state."""
        timeout_s = params.pop("timeout_s", 60.0)
        reply = client.command(
            self.id, "service", service=service, op=action, timeout_s=timeout_s, **params
        )
        return reply["services"]

    def run_reply(
        self, experiment: str, params: Mapping[str, Any] | None = None, *, timeout_s: float = 0
    ) -> dict:
        """Run an experiment as the platform does; return the supervisor's reply as is."""
        timeout_s = timeout_s or self._lab.experiment(experiment).timeout_s + RUN_MARGIN_S
        return client.command(
            self.id,
            "run",
            run_id=uuid.uuid4().hex[:12],
            experiment=experiment,
            params=dict(params or {}),
            timeout_s=timeout_s,
        )

    def run(
        self, experiment: str, params: Mapping[str, Any] | None = None, *, timeout_s: float = 0
    ) -> dict:
        """Run an experiment as the platform does; return its result, raise RunFailed if it failed."""
        reply = self.run_reply(experiment, params, timeout_s=timeout_s)
        if reply.get("state") != "done":
            raise RunFailed(experiment, reply)
        return reply["result"]

    def dump_stacks(self) -> None:
        """Have every service and runner print its threads' stacks; print the logs' tails."""
        try:
            current = self.status()
        except Exception as error:  # a diagnostic must not hide the failure it explains
            print(f"--- no status of sandbox {self.id}: {error}", flush=True)
            return
        pids = [
            instance["pid"]
            for entry in current.get("services", {}).values()
            for instance in entry["instances"]
            if instance["pid"]
        ]
        for pid in [*pids, *current.get("runner_pids", [])]:
            signal_process(pid)
        time.sleep(STACK_DUMP_WAIT_S)  # faulthandler writes from a signal handler, at once
        print(f"--- sandbox {self.id} ({self.lesson}): {current.get('state')}", flush=True)
        for log in sorted((self.workdir / "logs").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            print(f"--- {log.name} (last {len(lines)} lines)", *lines, sep="\n", flush=True)

    def stop(self) -> dict | None:
        """Stop the sandbox (its teardown runs); return the final reply, None if already gone."""
        try:
            return client.command(self.id, "stop", timeout_s=30)
        except SandboxGone:
            return None


def signal_process(pid: int) -> None:
    """Send SIGUSR1 (stack dump) to a process of a sandbox, if it still exists."""
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass


def start_sandbox(
    host: LaunchedHost, lesson: str, settings: Mapping[str, Any] | None = None
) -> Sandbox:
    """Start a sandbox of ``lesson`` on ``host`` and return its handle once every service runs."""
    sandbox_id, reply = host.spawn(
        lesson,
        idle_timeout_s=LIFETIME_S,
        lifetime_s=LIFETIME_S,
        timeout_s=SPAWN_TIMEOUT_S,
        settings=settings,
    )
    return Sandbox(host, sandbox_id, lesson, reply)


def _key(lesson: str, settings: Mapping[str, Any]) -> tuple:
    return (lesson, tuple(sorted((name, repr(value)) for name, value in settings.items())))


@pytest.fixture(scope="module")
def sandbox_host() -> Iterator[LaunchedHost]:
    """One real sandbox host (and its worker heartbeat) for the module."""
    with running_host(f"test-{uuid.uuid4().hex[:8]}") as host:
        yield host


@pytest.fixture(scope="module")
def lesson_sandbox(sandbox_host: LaunchedHost) -> Iterator[Callable[..., Sandbox]]:
    """Return ``start(lesson, **settings)``: one shared running sandbox per lesson and settings."""
    started: dict[tuple, Sandbox] = {}

    def start(lesson: str, **settings: Any) -> Sandbox:
        key = _key(lesson, settings)
        if key not in started or not client.is_alive(started[key].id):
            started[key] = start_sandbox(sandbox_host, lesson, settings)
        return started[key]

    try:
        yield start
    finally:
        for sandbox in started.values():
            sandbox.stop()


@pytest.fixture
def new_sandbox(sandbox_host: LaunchedHost) -> Iterator[Callable[..., Sandbox]]:
    """Return ``start(lesson, **settings)``: sandboxes of the test's own, stopped after it."""
    started: list[Sandbox] = []

    def start(lesson: str, **settings: Any) -> Sandbox:
        started.append(start_sandbox(sandbox_host, lesson, settings))
        return started[-1]

    try:
        yield start
    finally:
        for sandbox in started:
            sandbox.stop()
