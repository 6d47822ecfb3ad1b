"""The "sandbox" and "run" messages of a sandbox's channel-layer group: one shape each.

Two processes publish them. The supervisor knows the live services and a run's
progress; the web tier's Celery tasks know the database's side (a sandbox
started or ended, a run queued or finished). Both build their messages with
the functions here, so a browser gets the same keys and types whoever sent
one, and the WebSocket consumer forwards them as they are.

Times are ISO 8601 strings in UTC, written as the REST API (DRF) writes them.
The browser merges an API answer and a socket message into one object, so a
field has to read the same wherever it came from; JSON has no date type, and
an ISO string says what it is where a bare number of seconds does not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SANDBOX_STATE = "sandbox.state"
RUN = "sandbox.run"

# Process ids are the host's business: the status in Redis keeps them for
# operators and benchmarks, browsers never see them.
PROCESS_ID_FIELDS = frozenset({"pid", "pids", "metrics_pid", "runner_pids"})


def without_process_ids(value: Any) -> Any:
    """Return ``value`` with every process id field removed, at any depth."""
    if isinstance(value, dict):
        return {
            key: without_process_ids(item)
            for key, item in value.items()
            if key not in PROCESS_ID_FIELDS
        }
    if isinstance(value, list):
        return [without_process_ids(item) for item in value]
    return value


def iso_time(value: datetime | float | None) -> str | None:
    """Return a datetime or Unix seconds as ISO 8601 in UTC, ending in "Z" as DRF writes it."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    text = value.astimezone(UTC).isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def sandbox_state_message(
    *,
    sandbox_id: str,
    lesson: str,
    state: str,
    reason: str,
    services: dict[str, Any],
    worker: str,
    expires_at: datetime | float | None,
) -> dict[str, Any]:
    """Return the channel-layer message saying what state a sandbox and its services are in."""
    return {
        "type": SANDBOX_STATE,
        "sandbox": {
            "id": str(sandbox_id),
            "lesson": str(lesson),
            "state": str(state),
            "reason": str(reason or ""),
            "services": without_process_ids(dict(services or {})),
            "worker": str(worker or ""),
            "expires_at": iso_time(expires_at),
        },
    }


def run_message(
    *,
    run_id: str,
    sandbox_id: str,
    experiment: str,
    params: dict[str, Any],
    state: str,
    progress: float,
    message: str = "",
    result: dict[str, Any] | None = None,
    error: str = "",
    finished_at: datetime | float | None = None,
) -> dict[str, Any]:
    """Return the channel-layer message saying how an experiment run is going."""
    return {
        "type": RUN,
        "run": {
            "id": str(run_id),
            "sandbox": str(sandbox_id),
            "experiment": str(experiment),
            "params": dict(params or {}),
            "state": str(state),
            "progress": float(progress),
            "message": str(message or ""),
            "result": result,
            "error": str(error or ""),
            "finished_at": iso_time(finished_at),
        },
    }
