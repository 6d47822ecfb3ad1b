"""Attach the sandbox host to a Celery worker: start it, keep its heartbeat, reap it."""

from __future__ import annotations

import logging

from .launcher import LaunchedHost, launch_host

log = logging.getLogger(__name__)


def attach(worker_name: str) -> LaunchedHost:
    """Start the sandbox host of this worker and the thread that keeps its heartbeat.

    Call from Celery's ``worker_ready`` signal, in the worker's main thread: the
    host gets SIGKILL when this thread's process dies (PR_SET_PDEATHSIG). A host
    that exits on its own is started again once.
    """
    host = launch_host(worker_name, die_with_parent=True, restarts=1)
    log.info("sandbox host of %s started (pid %d)", worker_name, host.process.pid)
    return host
