"""Redis key names and channel-layer group names: the only place they are built.

The web tier, the host, supervisors, services and the AMQP helpers all name
keys through these functions, so one grep finds every reader and writer of a
key (docs/architecture.md lists them).
"""

from __future__ import annotations

PREFIX = "lab:"


def worker_alive(worker: str) -> str:
    """Return the worker heartbeat key (TTL = LAB_KEEPALIVE_SECONDS)."""
    return f"{PREFIX}worker:{worker}:alive"


def worker_events(worker: str, pid: int) -> str:
    """Return the list where the sandboxes a worker process started push their runs' and own ends.

    By process, not by name alone: two workers given one name (test sessions
    side by side) must not take each other's events.
    """
    return f"{PREFIX}worker:{worker}:{pid}:events"


def host_spawn(worker: str) -> str:
    """Return the list of spawn requests for the host of ``worker``."""
    return f"{PREFIX}host:{worker}:spawn"


def sandbox_alive(sandbox_id: str) -> str:
    """Return the supervisor heartbeat key."""
    return f"{PREFIX}sb:{sandbox_id}:alive"


def sandbox_touch(sandbox_id: str) -> str:
    """Return the activity key; its expiry is the idle timeout."""
    return f"{PREFIX}sb:{sandbox_id}:touch"


def sandbox_watched(sandbox_id: str) -> str:
    """Return the key a watching browser's WebSocket refreshes; missing = nobody watches."""
    return f"{PREFIX}sb:{sandbox_id}:watched"


def sandbox_commands(sandbox_id: str) -> str:
    """Return the list of commands to the supervisor."""
    return f"{PREFIX}sb:{sandbox_id}:cmd"


def sandbox_reply(sandbox_id: str, command_id: str) -> str:
    """Return the reply list of one command (the spawn reply uses command id "spawn")."""
    return f"{PREFIX}sb:{sandbox_id}:reply:{command_id}"


def sandbox_outbox(sandbox_id: str) -> str:
    """Return the list where service processes push spans and metrics."""
    return f"{PREFIX}sb:{sandbox_id}:outbox"


def sandbox_spans(sandbox_id: str) -> str:
    """Return the sorted set of kept spans, score = seq."""
    return f"{PREFIX}sb:{sandbox_id}:spans"


def sandbox_status(sandbox_id: str) -> str:
    """Return the key holding the supervisor's last status as JSON."""
    return f"{PREFIX}sb:{sandbox_id}:status"


def run_progress(sandbox_id: str, run_id: str) -> str:
    """Return the key holding a run's newest progress (the ``run`` of its last message).

    A page opened mid-run reads it; it expires with the run's time limit and is
    deleted when the run ends.
    """
    return f"{PREFIX}sb:{sandbox_id}:run:{run_id}:progress"


def amqp_counts(sandbox_id: str) -> str:
    """Return the hash of per-queue totals, fields ``<queue>|published`` and ``<queue>|delivered``."""
    return f"{PREFIX}amqp:{sandbox_id}:counts"


def amqp_inflight(sandbox_id: str, queue: str, owner: str) -> str:
    """Return the key of the unacked messages one process (``<service>-<replica>``) holds."""
    return f"{PREFIX}amqp:{sandbox_id}:inflight:{queue}:{owner}"


def amqp_inflight_pattern(sandbox_id: str) -> str:
    """Return the SCAN pattern matching every ``amqp_inflight`` key of a sandbox."""
    return f"{PREFIX}amqp:{sandbox_id}:inflight:*"


def amqp_inflight_queue(key: str) -> str:
    """Return the queue an ``amqp_inflight`` key counts for."""
    return key.split(":")[4]


def amqp_last_sample(sandbox_id: str) -> str:
    """Return the key of the metrics hook's previous sample of the totals (for rates)."""
    return f"{PREFIX}amqp:{sandbox_id}:last"


# The set of every RabbitMQ stream (full name) a sandbox declared. Streams refuse
# x-expires, so the sweeper reads this set to delete those of gone sandboxes.
DECLARED_STREAMS = f"{PREFIX}streams"


def channel_group(sandbox_id: str) -> str:
    """Return the channel layer group of a sandbox."""
    return f"sandbox.{sandbox_id}"


def cohort_group(cohort_id: int) -> str:
    """Return the channel layer group of the instructors watching one cohort's class view."""
    return f"cohort.{int(cohort_id)}"


def service_commands(sandbox_id: str, service: str) -> str:
    """Return the list of commands for one service of a sandbox (a lab's control plane).

    Replies go to ``sandbox_reply`` like the supervisor's.
    """
    return f"{PREFIX}sb:{sandbox_id}:svc:{service}:cmd"
