"""Open a blocking pika connection, retrying while the broker is away."""

from __future__ import annotations

import logging
import time

import pika
import pika.exceptions

log = logging.getLogger(__name__)

# Errors after which the connection or channel is gone and must be reopened.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.StreamLostError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosed,
    ConnectionError,
    OSError,
)


# The AMQP heartbeat timeout of every lab connection. A broker that stops or
# restarts closes its sockets, and the client sees that at once; heartbeats only
# catch a connection that dies without a FIN (a cable, a NAT, a frozen host),
# after about two timeouts. Each heartbeat frame wakes the connection's thread and
# the broker: at 5 s (with 3 s idle turns), the AMQP threads of 45 idle
# messaging sandboxes kept the 2-core machine 2.8 % busy; at 30 s, about 0.5 %.
HEARTBEAT_S = 30
# How long an idle consuming thread waits in ``process_data_events`` between
# turns (for a stop flag or a changed setting). Deliveries end the wait at once,
# ``wake`` ends it from any thread, and pika answers heartbeats inside the wait,
# so the turn need not be shorter than the heartbeat.
IDLE_TURN_S = 10.0


def parameters(
    amqp_url: str, *, name: str = "lab", heartbeat: int = HEARTBEAT_S
) -> pika.URLParameters:
    """Return connection parameters: ``heartbeat`` 0 turns heartbeats off.

    Off suits a connection used now and then that nobody drives in between.
    """
    params = pika.URLParameters(amqp_url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 30
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return params


def connect(
    amqp_url: str,
    *,
    name: str = "lab",
    deadline_s: float = 30.0,
    stop=None,
    heartbeat: int = HEARTBEAT_S,
) -> pika.BlockingConnection:
    """Connect, retrying with backoff until ``deadline_s`` passes (or ``stop`` is set)."""
    give_up = time.monotonic() + deadline_s
    delay = 0.1
    while True:
        try:
            return pika.BlockingConnection(parameters(amqp_url, name=name, heartbeat=heartbeat))
        except CONNECTION_ERRORS as error:
            if time.monotonic() + delay > give_up or (stop is not None and stop.is_set()):
                raise
            log.warning("broker unreachable (%s); retrying in %.1fs", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def wake(connection: pika.BlockingConnection | None) -> None:
    """End a consuming thread's ``process_data_events`` wait now; any thread may call it.

    Idle consumers wait seconds between turns (an idle sandbox costs next to
    nothing); a stop or a changed setting must not wait for the next turn.
    """
    if connection is None:
        return
    try:
        connection.add_callback_threadsafe(lambda: None)
    except Exception:  # closed meanwhile: the next connection sees the change anyway
        pass
