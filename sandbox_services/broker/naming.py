"""Name broker objects after their sandbox, so ownership and cleanup follow from the name."""

from __future__ import annotations

# An abandoned sandbox's queues vanish this long after their last consumer leaves.
QUEUE_EXPIRES_MS = 10 * 60 * 1000


def full_name(prefix: str, short: str) -> str:
    """Return the broker name of a sandbox object ("lab.<sandbox id>.<short>")."""
    if not short:
        raise ValueError("short name must not be empty")
    return f"{prefix}{short}"


def sandbox_of(name: str) -> str | None:
    """Return the sandbox id encoded in a broker name, or None if it is not a lab name."""
    parts = name.split(".", 2)
    if len(parts) < 3 or parts[0] != "lab" or not parts[1]:
        return None
    return parts[1]


def queue_arguments(expires_ms: int = QUEUE_EXPIRES_MS, **extra: object) -> dict:
    """Return classic-queue arguments that make an unused queue delete itself."""
    return {"x-expires": expires_ms, **extra}


def stream_arguments(max_age: str = "1D", max_length_bytes: int = 200_000_000) -> dict:
    """Return stream arguments; streams refuse x-expires, so they are bounded by age and size."""
    return {"x-queue-type": "stream", "x-max-age": max_age, "x-max-length-bytes": max_length_bytes}
