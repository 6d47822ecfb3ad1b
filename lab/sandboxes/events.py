"""Tell the browsers watching a sandbox what changed (channel layer group_send)."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .models import Run, Sandbox


PRIVATE_KEYS = frozenset({"pid", "pids", "metrics_pid", "runner_pids"})


def without_process_ids(value):
    """Return ``value`` without process ids: they are the host's business, not the browser's."""
    if isinstance(value, dict):
        return {
            key: without_process_ids(item) for key, item in value.items() if key not in PRIVATE_KEYS
        }
    if isinstance(value, list):
        return [without_process_ids(item) for item in value]
    return value


def sandbox_payload(sandbox: Sandbox) -> dict:
    return {
        "id": sandbox.id,
        "lesson": sandbox.lesson,
        "state": sandbox.state,
        "reason": sandbox.reason,
        "services": without_process_ids(sandbox.services),
        "worker": sandbox.worker,
        "created_at": sandbox.created_at.isoformat() if sandbox.created_at else None,
        "started_at": sandbox.started_at.isoformat() if sandbox.started_at else None,
        "stopped_at": sandbox.stopped_at.isoformat() if sandbox.stopped_at else None,
        "expires_at": sandbox.expires_at.isoformat() if sandbox.expires_at else None,
    }


def run_payload(run: Run) -> dict:
    return {
        "id": run.id,
        "sandbox": run.sandbox_id,
        "experiment": run.experiment,
        "params": run.params,
        "state": run.state,
        "progress": 1.0 if run.state in ("done", "failed") else 0.0,
        "message": run.error,
        "result": run.result,
        "error": run.error,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _send(group: str, message: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(group, message)


def sandbox_changed(sandbox: Sandbox) -> None:
    _send(sandbox.group_name, {"type": "sandbox.state", "sandbox": sandbox_payload(sandbox)})


def run_changed(run: Run) -> None:
    _send(f"sandbox.{run.sandbox_id}", {"type": "sandbox.run", "run": run_payload(run)})
