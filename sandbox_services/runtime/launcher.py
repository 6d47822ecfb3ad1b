"""Start a real sandbox host, keep its worker heartbeat, and end it with all it forked.

The one way to run a sandbox host. The Celery worker (``runtime/worker.py``),
the tests (``tests/sandboxes.py``, ``tests/runtime/conftest.py``) and the
benchmarks all call ``launch_host``::

    with running_host() as host:            # or: host = launch_host(...); host.stop()
        sandbox_id, reply = host.spawn("selftest")

The host runs ``python -m sandbox_services.runtime.host --name NAME`` in a
process group of its own (by default in a session of its own too), so
``LaunchedHost.stop`` ends the host and every supervisor, service, runner and
load generator it forked with one ``killpg``, even when a test failed. A
thread refreshes the worker heartbeat key (``keys.worker_alive``) every third
of LAB_KEEPALIVE_SECONDS, as a Celery worker does; when the heartbeat stops,
the host and its sandboxes end themselves within the keep-alive time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import redis

from . import client, keys
from .config import PROJECT_ROOT, RuntimeConfig, load_config
from .forking import set_parent_death_signal

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
SANDBOX_STOP_TIMEOUT_S = 30.0

_Output = int | IO[Any] | None


def _die_with_parent() -> None:
    set_parent_death_signal(signal.SIGKILL)


class LaunchedHost:
    """A running sandbox host process and the worker heartbeat that keeps it alive."""

    def __init__(
        self,
        name: str,
        *,
        env: Mapping[str, str],
        own_session: bool,
        die_with_parent: bool,
        restarts: int,
        stdout: _Output,
        stderr: _Output,
    ) -> None:
        self.name = name
        self.env = dict(env)
        # The host reads its settings from this environment: so does its handle.
        self.config: RuntimeConfig = load_config(self.env)
        self.redis = redis.Redis.from_url(self.config.redis_url)
        self.sandboxes: list[str] = []
        self.beating = threading.Event()  # cleared: the heartbeat is withheld
        self._own_session = own_session
        self._die_with_parent = die_with_parent
        self._restarts_left = restarts
        self._output = (stdout, stderr)
        self._ending = threading.Event()  # set: no restarts any more
        self._stopped = threading.Event()  # set: the heartbeat thread ends
        self._exit_reported = False
        self._thread: threading.Thread | None = None
        self.process: subprocess.Popen | None = None

    @property
    def workdir(self) -> Path:
        """Return the directory under which each sandbox of this host has its own."""
        return self.config.workdir

    def _beat(self) -> None:
        self.redis.set(
            keys.worker_alive(self.name), os.getpid(), px=int(self.config.keepalive_s * 1000)
        )

    def _popen(self) -> subprocess.Popen:
        stdout, stderr = self._output
        return subprocess.Popen(
            [sys.executable, "-m", "sandbox_services.runtime.host", "--name", self.name],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=stdout,
            stderr=stderr,
            # A group of its own: Ctrl-C on the caller's terminal is the caller's,
            # and one killpg ends everything the host forked. A benchmark keeps the
            # host in the benchmark's session (own_session=False): Linux's autogroup
            # scheduler shares the CPU between sessions, not between groups.
            start_new_session=self._own_session,
            process_group=None if self._own_session else 0,
            preexec_fn=_die_with_parent if self._die_with_parent else None,
        )

    def start(self) -> LaunchedHost:
        """Write the heartbeat, start the host and the thread that keeps the heartbeat."""
        self._beat()  # the heartbeat exists before the host looks for it
        self.beating.set()
        self.process = self._popen()
        log.info("sandbox host %s started (pid %d)", self.name, self.process.pid)
        self._thread = threading.Thread(
            target=self._keep_alive, name=f"lab-keepalive-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def _keep_alive(self) -> None:
        while not self._stopped.wait(self.config.keepalive_s / 3):
            if self.beating.is_set():
                try:
                    self._beat()
                except redis.RedisError as error:
                    log.warning("cannot refresh the heartbeat of %s: %s", self.name, error)
            assert self.process is not None
            code = self.process.poll()  # also reaps it, so it never lingers as a zombie
            if code is None or self._ending.is_set() or self._exit_reported:
                continue
            if self._restarts_left > 0:
                self._restarts_left -= 1
                log.warning("sandbox host %s exited (code %s); restarting it", self.name, code)
                self.process = self._popen()
            else:
                log.error("sandbox host %s exited (code %s); not restarting", self.name, code)
                self._exit_reported = True

    def stop_heartbeat(self) -> None:
        """Stop refreshing the worker heartbeat and delete it, as a dead worker would."""
        self.beating.clear()
        self.redis.delete(keys.worker_alive(self.name))

    def spawn(
        self,
        lesson: str = "selftest",
        *,
        idle_timeout_s: float = 600.0,
        lifetime_s: float = 900.0,
        timeout_s: float = 30.0,
        settings: Mapping[str, Any] | None = None,
        sandbox_id: str | None = None,
    ) -> tuple[str, dict]:
        """Start a sandbox of ``lesson`` on this host; return its id and the spawn reply.

        ``settings`` override keys of the lesson's ``LabSpec.settings`` for this
        sandbox only. Raises ``client.SandboxError`` when the sandbox does not start.
        """
        sandbox_id = sandbox_id or uuid.uuid4().hex
        self.sandboxes.append(sandbox_id)  # ended by stop() even if the spawn fails late
        reply = client.spawn(
            host=self.name,
            sandbox_id=sandbox_id,
            lesson=lesson,
            hard_deadline=time.time() + lifetime_s,
            idle_timeout_s=idle_timeout_s,
            timeout_s=timeout_s,
            settings=settings,
        )
        return sandbox_id, reply

    def stop_sandboxes(self) -> None:
        """Stop every sandbox spawned through this handle that still runs, teardown included."""
        for sandbox_id in self.sandboxes:
            if client.is_alive(sandbox_id):
                with contextlib.suppress(client.SandboxError):
                    client.command(sandbox_id, "stop", timeout_s=SANDBOX_STOP_TIMEOUT_S)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """End the host and everything it forked; delete the heartbeat. Safe to call twice."""
        if self.process is None:
            return
        try:
            # One by one first: a stopped sandbox has run its teardown (broker objects).
            self.stop_sandboxes()
        finally:
            self._ending.set()
            process = self.process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # the host stops its supervisors
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(grace_s)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
            process.wait()
            # Only now: a host restarted by that thread dies with it (PR_SET_PDEATHSIG).
            self._stopped.set()
            if self._thread is not None:
                self._thread.join(self.config.keepalive_s)
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(keys.worker_alive(self.name))


def launch_host(
    name: str | None = None,
    *,
    extra_env: Mapping[str, str] | None = None,
    own_session: bool = True,
    die_with_parent: bool = True,
    restarts: int = 0,
    stdout: _Output = None,
    stderr: _Output = None,
) -> LaunchedHost:
    """Start a sandbox host named ``name`` (a worker's name) with its heartbeat; return it.

    ``extra_env`` is added to this process's environment for the host (REDIS_URL,
    AMQP_URL, LAB_WORKDIR, LAB_KEEPALIVE_SECONDS are read from it). With
    ``die_with_parent`` the host gets SIGKILL when the calling thread's process
    dies (PR_SET_PDEATHSIG: call from a thread that lives as long as the
    process). ``restarts`` is how many times a host that exits on its own is
    started again. Call ``stop()`` on the result when done.
    """
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    host = LaunchedHost(
        name or f"host-{uuid.uuid4().hex[:8]}",
        env=env,
        own_session=own_session,
        die_with_parent=die_with_parent,
        restarts=restarts,
        stdout=stdout,
        stderr=stderr,
    )
    return host.start()


@contextlib.contextmanager
def running_host(name: str | None = None, **options: Any) -> Iterator[LaunchedHost]:
    """Run a host (see ``launch_host``) for the block; end it and all it forked after."""
    host = launch_host(name, **options)
    try:
        yield host
    finally:
        host.stop()
