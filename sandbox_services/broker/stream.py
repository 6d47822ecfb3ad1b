"""Read a RabbitMQ stream by offset: the log is replayable because reading does not remove."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pika

from .connection import CONNECTION_ERRORS, connect
from .tracing import untraced_basic_consume

# Credit the broker may push ahead of our acks; streams require a prefetch.
READ_PREFETCH = 2000
ACK_EVERY = 500
# How long a reader waits for its first delivery. The broker starts a stream
# reader after consume-ok, and on a loaded machine the first delivery can take
# far longer than the pause between two deliveries: an ``idle_s`` timer started
# at once took a log being read for an empty one. The price: reading a log that
# really is empty takes this long.
FIRST_MESSAGE_S = 3.0


def read_stream(
    amqp_url: str,
    stream: str,
    *,
    start: int | str = "first",
    until: Callable[[int, dict], bool] | None = None,
    idle_s: float = 0.5,
    first_message_s: float = FIRST_MESSAGE_S,
    deadline_s: float = 120.0,
) -> Iterator[tuple[int, dict, dict]]:
    """Yield (offset, event, headers) from ``start`` until ``until`` says stop or the log is idle.

    A stream has no "end" in AMQP 0-9-1: a reader that is caught up just waits.
    So the caller says when to stop, or we stop after ``idle_s`` without a message
    (``first_message_s`` before the first one arrives).
    """
    connection = connect(amqp_url, name="stream-reader", deadline_s=10)
    buffered: list[tuple[int, dict, dict, int]] = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=READ_PREFETCH)

        def on_message(_channel, method, properties, body: bytes) -> None:
            headers = properties.headers or {}
            buffered.append(
                (int(headers["x-stream-offset"]), json.loads(body), headers, method.delivery_tag)
            )

        untraced_basic_consume(channel, stream, on_message, arguments={"x-stream-offset": start})
        give_up = time.monotonic() + deadline_s
        last_message = time.monotonic()
        quiet_s = max(idle_s, first_message_s)
        unacked = 0
        while time.monotonic() < give_up:
            connection.process_data_events(time_limit=0.05)
            if not buffered:
                if time.monotonic() - last_message > quiet_s:
                    return
                continue
            last_message = time.monotonic()
            quiet_s = idle_s
            batch, buffered[:] = list(buffered), []
            for offset, event, headers, tag in batch:
                unacked += 1
                if unacked >= ACK_EVERY:
                    channel.basic_ack(tag, multiple=True)
                    unacked = 0
                yield offset, event, headers
                if until is not None and until(offset, event):
                    return
    finally:
        close_stream_connection(connection)


# pika's BlockingChannel.close() and basic_cancel() reject the deliveries it has buffered
# but not yet dispatched, and a stream answers basic.reject by closing the connection
# (540 NOT_IMPLEMENTED). So stream readers close at the protocol level instead: the
# broker drops the channel and its unacked deliveries, and a stream loses nothing by it.


def close_stream_channel(connection: pika.BlockingConnection, channel) -> None:
    """Close a channel that consumes a stream without rejecting its buffered deliveries."""
    if channel is None or not channel.is_open:
        return
    try:
        channel._impl.close()
        while not channel.is_closed:
            connection.process_data_events(time_limit=0.05)
    except CONNECTION_ERRORS:
        pass


def close_stream_connection(connection: pika.BlockingConnection) -> None:
    """Close a connection with stream consumers without rejecting buffered deliveries."""
    try:
        if connection._impl.is_open:
            connection._impl.close()
        while not connection._impl.is_closed:
            connection.process_data_events(time_limit=0.05)
    except CONNECTION_ERRORS:
        pass
