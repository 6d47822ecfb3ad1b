"""Ask the real RabbitMQ whether a sandbox's queue, stream or exchange still exists."""

import os

import pika
import pika.exceptions

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def broker_has(name: str, kind: str = "queue") -> bool:
    """Tell whether a queue (or stream) or exchange exists, by a passive declare."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        if kind == "exchange":
            channel.exchange_declare(name, passive=True)
        else:
            channel.queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()
