"""Handle one choreography event: run the reaction it calls for, with retries where they belong.

The participant's AMQP consumer (server_amqp.py) calls ``handle_event`` for
each delivery and acks it only after the call returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sandbox_services.saga.knobs import SagaConfig

from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.choreography import REACTIONS
from sandbox_services.saga.interface import COMPENSATIONS, Order, StepError, StepResult, StepTimeout


def reaction_for(service: str, event: str) -> str | None:
    """Return the action this service runs for an event, or None if it is not its business."""
    owner, action = REACTIONS.get(event, ("", ""))
    return action if owner == service else None


def handle_event(
    backend: ParticipantBackend,
    body: dict,
    *,
    config: SagaConfig,
    before_attempt: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[str, StepResult] | None:
    """Run the reaction to one event; return (action, result), or None for a foreign event."""
    action = reaction_for(backend.service, body["event"])
    if action is None:
        return None
    order = Order.from_dict(body["order"])
    message_id = body["message_id"]
    # A compensation and the final approval must eventually succeed: they are
    # retried until they do. A forward step gets a few attempts, then the
    # participant gives up and publishes a failure event, which starts the undo.
    must_succeed = action in COMPENSATIONS or action == "approve"
    attempt = 0
    backoff = config.retry_backoff_s
    while True:
        attempt += 1
        try:
            if before_attempt is not None:
                _as_step_error(before_attempt)
            return action, backend.execute(action, order, message_id=message_id, emit=True)
        except StepTimeout as error:
            if not must_succeed:
                return action, backend.record_failure(
                    action, order, reason=str(error), message_id=message_id, emit=True
                )
        except StepError as error:
            if not must_succeed and attempt >= config.step_attempts:
                return action, backend.record_failure(
                    action, order, reason=str(error), message_id=message_id, emit=True
                )
        if should_stop():
            raise StepError(f"{backend.service} stopping with {action} unfinished")
        time.sleep(backoff)
        backoff = min(backoff * 2, config.retry_backoff_max_s)


def _as_step_error(hook: Callable[[], None]) -> None:
    """Run a fault hook; whatever it raises counts as a step error (e.g. an injected fault)."""
    try:
        hook()
    except StepError:
        raise
    except Exception as error:
        raise StepError(f"injected fault: {error}") from error
