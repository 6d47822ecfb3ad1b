"""How the web tier and Celery tasks talk to sandboxes: through Redis only.

Nothing here opens a sandbox's own ports. Most functions are synchronous (Celery
tasks, Django views, the consumer through ``sync_to_async``); a WebSocket's connect
reads the kept spans and its runs' progress with the async
``areplay_with_progress``, in one round trip.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis
import redis.asyncio as aioredis

from . import keys
from .config import load_config

# States in which a supervisor should be alive; if its heartbeat is gone, it died.
_LIVE_STATES = {"starting", "running", "stopping"}
_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    url = load_config().redis_url
    client = _clients.get(url)
    if client is None:
        # redis-py's pool notices a fork and reconnects, so one client per URL is safe.
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def spawn(
    *,
    host: str,
    sandbox_id: str,
    lesson: str,
    hard_deadline: float,
    idle_timeout_s: float,
    timeout_s: float = 15.0,
    settings: Mapping[str, Any] | None = None,
    report_to: str | None = None,
) -> dict:
    """Ask the sandbox host of Celery worker ``host`` to start a sandbox; wait until ready.

    Returns ``{"state": "running", "services": {name: {"state": "running",
    "port": int, "replicas": int, "pid": int}}}`` or raises ``SandboxError``
    with the reason (a service that never became healthy, an unknown lesson).
    ``hard_deadline`` is a Unix time; the supervisor expires the sandbox after
    ``idle_timeout_s`` without ``touch``. ``settings`` (JSON values) override
    keys of the lesson's ``LabSpec.settings`` for this sandbox only (tests do).
    With ``report_to`` (a ``keys.worker_events`` list) the supervisor pushes
    there the start and end of each run sent with ``events=True`` and its own
    end (see ``pop_event``).
    """
    client = _redis()
    if not client.exists(keys.worker_alive(host)):
        raise SandboxError(f"no sandbox host is running for worker {host!r}")
    reply_key = keys.sandbox_reply(sandbox_id, "spawn")
    client.delete(reply_key)
    request = {
        "sandbox_id": sandbox_id,
        "lesson": lesson,
        "hard_deadline": hard_deadline,
        "idle_timeout_s": idle_timeout_s,
        "requested_at": time.time(),
        "settings": dict(settings or {}),
        "report_to": report_to,
        # The host drops a request nobody waits for any more (it sat in a queue
        # while no host ran): a sandbox started then would only idle away.
        "answer_by": time.time() + timeout_s,
    }
    client.rpush(keys.host_spawn(host), json.dumps(request))
    item = client.blpop([reply_key], timeout=timeout_s)
    if item is None:
        raise SandboxError(f"the sandbox did not start within {timeout_s:g} s")
    reply = json.loads(item[1])
    if reply.get("state") != "running":
        raise SandboxError(reply.get("reason") or "the sandbox failed to start")
    return reply


def command(sandbox_id: str, action: str, *, timeout_s: float = 10.0, **params: Any) -> dict:
    """Send one command to a running sandbox's supervisor and wait for its reply.

    Actions: "stop" (whole sandbox), "service" (params: service, op = stop |
    start | restart | delay | error | clear | kill | scale, and delay_ms /
    error_rate / replicas), "run" (params: run_id, experiment, params; the
    reply comes when the run ends, so pass a timeout above the experiment's).
    Raises ``SandboxGone`` if no supervisor answers.

    Replies: "stop" -> ``{"state": "stopped"|..., "reason"}`` once the sandbox
    has ended; "service" -> ``{"state": "ok", "services": {...}}`` (a refused
    operation raises ``SandboxError`` with the reason); "run" ->
    ``{"state": "done", "result": {...}}`` or ``{"state": "failed", "error": "..."}``
    (returned, not raised).
    """
    client = _redis()
    if not client.exists(keys.sandbox_alive(sandbox_id)):
        raise SandboxGone(f"sandbox {sandbox_id} is not running")
    command_id = uuid.uuid4().hex
    client.rpush(
        keys.sandbox_commands(sandbox_id),
        json.dumps({**params, "id": command_id, "action": action}),
    )
    item = client.blpop([keys.sandbox_reply(sandbox_id, command_id)], timeout=timeout_s)
    if item is None:
        if not client.exists(keys.sandbox_alive(sandbox_id)):
            raise SandboxGone(f"sandbox {sandbox_id} ended before it answered")
        raise SandboxError(f"sandbox {sandbox_id} did not answer {action!r} within {timeout_s:g} s")
    reply = json.loads(item[1])
    if action != "run" and reply.get("state") == "failed":
        raise SandboxError(reply.get("error") or f"{action} failed")
    return reply


def send(sandbox_id: str, action: str, **params: Any) -> None:
    """Hand one command to a running sandbox's supervisor without waiting for any reply.

    For "run" with ``events=True``: the supervisor runs one experiment at a
    time, in the order the commands came, and pushes the run's start and end
    to the list its spawn named (``report_to``, see ``pop_event``), so no
    caller holds a thread for the run's length. Raises ``SandboxGone`` if no
    supervisor is alive.
    """
    client = _redis()
    if not client.exists(keys.sandbox_alive(sandbox_id)):
        raise SandboxGone(f"sandbox {sandbox_id} is not running")
    client.rpush(
        keys.sandbox_commands(sandbox_id),
        json.dumps({**params, "id": uuid.uuid4().hex, "action": action, "reply": False}),
    )


def pop_event(worker: str, pid: int, timeout_s: float) -> dict | None:
    """Wait up to ``timeout_s`` for the next event of the sandboxes a worker process started.

    ``{"event": "started", "run_id", "sandbox_id", "since"}``, ``{"event":
    "ended", "run_id", "sandbox_id", "since", "state": "done"|"failed",
    "result", "error"}`` (``since``: the sandbox's span seq when the run
    began) or ``{"event": "sandbox-ended", "sandbox_id", "state", "reason"}``.
    """
    item = _redis().blpop([keys.worker_events(worker, pid)], timeout=timeout_s)
    return json.loads(item[1]) if item is not None else None


def watch(sandbox_id: str, watcher: str, ttl_s: float) -> None:
    """Record that ``watcher`` (a WebSocket) watches the sandbox; refresh before ``ttl_s`` ends.

    While any watcher is recorded, the sandbox samples its gauges; without one
    it does nothing but its heartbeat.
    """
    key = keys.sandbox_watched(sandbox_id)
    with _redis().pipeline(transaction=False) as pipe:
        pipe.sadd(key, watcher)
        pipe.expire(key, max(1, int(ttl_s)))
        added, _ = pipe.execute()
    if added:
        # A new watcher: the first wakes the gauges now rather than at the next
        # heartbeat; any gets the newest gauges at once (they are sent on change).
        try:
            send(sandbox_id, "watched")
        except SandboxGone:
            pass  # not running: nothing samples, and the page hears the state


def unwatch(sandbox_id: str, watcher: str) -> None:
    """Forget one watcher (the set, and with it the key, goes when the last one leaves)."""
    _redis().srem(keys.sandbox_watched(sandbox_id), watcher)


def touch(sandbox_id: str, idle_timeout_s: float) -> None:
    """Record activity so the idle deadline moves forward (by a new timeout, if it differs)."""
    # xx: never resurrect the key of a sandbox that has already ended. The value is
    # the timeout, so the supervisor's "no activity for N s" names the one that ran out.
    _redis().set(
        keys.sandbox_touch(sandbox_id),
        f"{idle_timeout_s:g}",
        px=max(1, int(idle_timeout_s * 1000)),
        xx=True,
    )


def is_alive(sandbox_id: str) -> bool:
    """Tell whether the sandbox's supervisor is alive (its heartbeat key exists)."""
    return bool(_redis().exists(keys.sandbox_alive(sandbox_id)))


def status(sandbox_id: str) -> dict:
    """Return the supervisor's last published status: state, reason, services.

    A status that still says starting/running/stopping while the heartbeat is
    gone means the supervisor died without a word: it is reported as "lost".
    A sandbox Redis no longer knows is ``{"state": "unknown"}``.
    """
    client = _redis()
    raw, alive = (
        client.get(keys.sandbox_status(sandbox_id)),
        client.exists(keys.sandbox_alive(sandbox_id)),
    )
    if raw is None:
        return {
            "id": sandbox_id,
            "state": "unknown",
            "reason": "no status recorded",
            "services": {},
        }
    current = json.loads(raw)
    if current.get("state") in _LIVE_STATES and not alive:
        current["state"], current["reason"] = "lost", "the sandbox's supervisor is gone"
    return current


def replay(sandbox_id: str, since: int = 0, limit: int = 5000) -> list[dict]:
    """Return kept spans with seq > since, oldest first."""
    raw = _redis().zrangebyscore(
        keys.sandbox_spans(sandbox_id), f"({int(since)}", "+inf", start=0, num=int(limit)
    )
    return [json.loads(item) for item in raw]


async def areplay_with_progress(
    sandbox_id: str, since: int, run_ids: list[str], limit: int = 5000
) -> tuple[list[dict], dict[str, dict]]:
    """Return kept spans with seq > since (oldest first) and the newest progress of each run.

    A run's progress is the ``run`` of its last progress message
    (``runtime/messages.py`` ``run_message``), by run id; a run that has not
    started or has ended has none. One connection and one round trip: what a
    page's WebSocket reads as it connects (the async twin of ``replay``, plus that).
    """
    client = aioredis.Redis.from_url(load_config().redis_url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(
                keys.sandbox_spans(sandbox_id), f"({int(since)}", "+inf", start=0, num=int(limit)
            )
            if run_ids:  # MGET wants at least one key
                pipe.mget([keys.run_progress(sandbox_id, run_id) for run_id in run_ids])
            results = await pipe.execute()
    finally:
        await client.aclose()
    raw_progress = results[1] if run_ids else []
    progress = {
        run_id: json.loads(item)
        for run_id, item in zip(run_ids, raw_progress, strict=True)
        if item is not None
    }
    return [json.loads(item) for item in results[0]], progress


class SandboxError(Exception):
    """A sandbox could not do what was asked; the message is for the learner."""


class SandboxGone(SandboxError):
    """No supervisor answers for this sandbox."""
