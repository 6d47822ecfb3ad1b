"""Tell the browsers watching a sandbox what changed (channel layer group_send).

The supervisor sends the same two messages; both build them with
``sandbox_services.runtime.messages``, so they have one shape.
"""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.dispatch import Signal

from sandbox_services.runtime import keys, messages

from .models import Run, RunState, Sandbox

# Sent after a sandbox's state went to its browsers; the class view listens
# (the tasks move states with QuerySet.update(), which sends no post_save).
sandbox_announced = Signal()


def sandbox_state_message(sandbox: Sandbox) -> dict:
    """Return the channel-layer message giving the database's view of a sandbox."""
    return messages.sandbox_state_message(
        sandbox_id=sandbox.id,
        lesson=sandbox.lesson,
        state=sandbox.state,
        reason=sandbox.reason,
        services=sandbox.services,
        worker=sandbox.worker,
        expires_at=sandbox.expires_at,
    )


def run_message(run: Run) -> dict:
    """Return the channel-layer message giving the database's view of a run."""
    finished = run.state in (RunState.DONE, RunState.FAILED)
    return messages.run_message(
        run_id=run.id,
        sandbox_id=run.sandbox_id,
        experiment=run.experiment,
        params=run.params,
        state=run.state,
        progress=1.0 if finished else 0.0,
        message=run.error,
        result=run.result,
        error=run.error,
        finished_at=run.finished_at,
    )


def _send(sandbox_id: str, message: dict) -> None:
    async_to_sync(get_channel_layer().group_send)(keys.channel_group(sandbox_id), message)


def sandbox_changed(sandbox: Sandbox) -> None:
    """Send a sandbox's state to the browsers watching it."""
    _send(sandbox.id, sandbox_state_message(sandbox))
    sandbox_announced.send(sender=Sandbox, sandbox=sandbox)


def run_changed(run: Run) -> None:
    """Send a run's state to the browsers watching its sandbox."""
    _send(run.sandbox_id, run_message(run))
