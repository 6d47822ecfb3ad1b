"""Attach the sandbox host to a Celery worker: start it, keep its heartbeat, reap it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import redis

from . import keys
from .config import PROJECT_ROOT, load_config
from .forking import set_parent_death_signal

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    set_parent_death_signal(signal.SIGKILL)


def _start_host(worker_name: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox_services.runtime.host", "--name", worker_name],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,  # Ctrl-C on the worker's terminal is the worker's, not ours
        preexec_fn=_die_with_parent,
    )


def _keep_alive(worker_name: str, host: subprocess.Popen) -> None:
    config = load_config()
    client = redis.Redis.from_url(config.redis_url)
    key = keys.worker_alive(worker_name)
    ttl_ms = int(config.keepalive_s * 1000)
    restarted = False
    stop = threading.Event()
    while not stop.wait(config.keepalive_s / 3):
        try:
            client.set(key, os.getpid(), px=ttl_ms)
        except redis.RedisError as error:
            log.warning("cannot refresh %s: %s", key, error)
        code = host.poll()  # also reaps it, so it never lingers as a zombie
        if code is not None:
            if restarted:
                log.error(
                    "sandbox host of %s exited again (code %s); not restarting", worker_name, code
                )
                return
            log.warning(
                "sandbox host of %s exited (code %s); restarting it once", worker_name, code
            )
            host = _start_host(worker_name)
            restarted = True


def attach(worker_name: str) -> None:
    """Start the sandbox host of this worker and the thread that keeps its heartbeat.

    Call from Celery's ``worker_ready`` signal, in the worker's main thread: the
    host gets SIGKILL when this thread's process dies (PR_SET_PDEATHSIG).
    """
    config = load_config()
    # The heartbeat exists before the host looks for it.
    redis.Redis.from_url(config.redis_url).set(
        keys.worker_alive(worker_name), os.getpid(), px=int(config.keepalive_s * 1000)
    )
    host = _start_host(worker_name)
    log.info("sandbox host of %s started (pid %d)", worker_name, host.pid)
    threading.Thread(
        target=_keep_alive, args=(worker_name, host), name="lab-keepalive", daemon=True
    ).start()
