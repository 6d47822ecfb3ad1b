"""Redis key names shared by the web tier, the host, supervisors and services."""

from __future__ import annotations

PREFIX = "lab:"


def worker_alive(worker: str) -> str:
    """Return the worker heartbeat key (TTL = LAB_KEEPALIVE_SECONDS)."""
    return f"{PREFIX}worker:{worker}:alive"


def host_spawn(worker: str) -> str:
    """Return the list of spawn requests for the host of ``worker``."""
    return f"{PREFIX}host:{worker}:spawn"


def sandbox_alive(sandbox_id: str) -> str:
    """Return the supervisor heartbeat key."""
    return f"{PREFIX}sb:{sandbox_id}:alive"


def sandbox_touch(sandbox_id: str) -> str:
    """Return the activity key; its expiry is the idle timeout."""
    return f"{PREFIX}sb:{sandbox_id}:touch"


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


def channel_group(sandbox_id: str) -> str:
    """Return the channel layer group of a sandbox."""
    return f"sandbox.{sandbox_id}"
