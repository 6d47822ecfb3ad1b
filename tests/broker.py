"""Ask the real RabbitMQ whether a sandbox's queue, stream or exchange still exists."""

import os
import shutil
import subprocess

import pika
import pika.exceptions

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _passive(declare) -> object | None:
    """Run one passive declare on a fresh connection; None when the broker says 404."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return declare(connection.channel())
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if connection.is_open:
            connection.close()


def broker_has(name: str, kind: str = "queue") -> bool:
    """Tell whether a queue (or stream) or exchange exists, by a passive declare."""
    if kind == "exchange":
        return _passive(lambda channel: channel.exchange_declare(name, passive=True)) is not None
    return queue_counts(name) is not None


def queue_counts(name: str) -> tuple[int, int] | None:
    """Return a queue's (ready messages, consumers), or None when it does not exist."""
    declared = _passive(lambda channel: channel.queue_declare(name, passive=True))
    if declared is None:
        return None
    return declared.method.message_count, declared.method.consumer_count


def broker_report(prefix: str) -> str:
    """What rabbitmqctl says of a sandbox's queues and bindings (a failure's evidence)."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not available"
    lines = []
    for command in (
        ["list_queues", "name", "messages_ready", "messages_unacknowledged", "consumers"],
        ["list_bindings", "source_name", "destination_name", "routing_key"],
        ["list_consumers", "queue_name", "channel_pid", "prefetch_count"],
    ):
        try:
            listed = subprocess.run(
                ["rabbitmqctl", "-q", *command], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.SubprocessError) as error:
            listed = f"{command[0]} failed: {error!r}"
        lines += [command[0], *(line for line in listed.splitlines() if prefix in line)]
    return "\n".join(lines)
