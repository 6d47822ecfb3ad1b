"""How the web tier and Celery tasks talk to sandboxes: through Redis only.

Nothing here opens a sandbox's own ports. Every function is synchronous (Celery
tasks, Django views); the WebSocket consumer uses ``replay`` through
``asgiref.sync.sync_to_async`` or the async twin ``areplay``.
"""

from __future__ import annotations

from typing import Any


def spawn(
    *,
    host: str,
    sandbox_id: str,
    lesson: str,
    hard_deadline: float,
    idle_timeout_s: float,
    timeout_s: float = 15.0,
) -> dict:
    """Ask the sandbox host of Celery worker ``host`` to start a sandbox; wait until ready.

    Returns ``{"state": "running", "services": {name: {"state": "running",
    "port": int, "replicas": int, "pid": int}}}`` or raises ``SandboxError``
    with the reason (a service that never became healthy, an unknown lesson).
    ``hard_deadline`` is a Unix time; the supervisor expires the sandbox after
    ``idle_timeout_s`` without ``touch``.
    """
    raise NotImplementedError


def command(sandbox_id: str, action: str, *, timeout_s: float = 10.0, **params: Any) -> dict:
    """Send one command to a running sandbox's supervisor and wait for its reply.

    Actions: "stop" (whole sandbox), "service" (params: service, op = stop |
    start | restart | delay | error | clear | kill | scale, and delay_ms /
    error_rate / replicas), "run" (params: run_id, experiment, params; the
    reply comes when the run ends, so pass a timeout above the experiment's).
    Raises ``SandboxGone`` if no supervisor answers.
    """
    raise NotImplementedError


def touch(sandbox_id: str, idle_timeout_s: float) -> None:
    """Record activity so the idle deadline moves forward."""
    raise NotImplementedError


def is_alive(sandbox_id: str) -> bool:
    """Tell whether the sandbox's supervisor is alive (its heartbeat key exists)."""
    raise NotImplementedError


def status(sandbox_id: str) -> dict:
    """Return the supervisor's last published status: state, reason, services."""
    raise NotImplementedError


def replay(sandbox_id: str, since: int = 0, limit: int = 5000) -> list[dict]:
    """Return kept spans with seq > since, oldest first."""
    raise NotImplementedError


async def areplay(sandbox_id: str, since: int = 0, limit: int = 5000) -> list[dict]:
    raise NotImplementedError


class SandboxError(Exception):
    """A sandbox could not do what was asked; the message is for the learner."""


class SandboxGone(SandboxError):
    """No supervisor answers for this sandbox."""
