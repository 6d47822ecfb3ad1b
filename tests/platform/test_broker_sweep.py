"""The beat task deletes streams of sandboxes that are gone (streams refuse x-expires)."""

import uuid

import pika
import pytest
from django.conf import settings

from lab.sandboxes.tasks import broker_sweep
from sandbox_services.broker.sweeper import record_stream


def test_broker_sweep_deletes_an_abandoned_sandboxes_stream(db):
    name = f"lab.{uuid.uuid4().hex}.log"
    connection = pika.BlockingConnection(pika.URLParameters(settings.AMQP_URL))
    try:
        channel = connection.channel()
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
        record_stream(settings.REDIS_URL, name)
        assert name in broker_sweep()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            connection.channel().queue_declare(name, passive=True)
    finally:
        if connection.is_open:
            cleanup = connection.channel()
            cleanup.queue_delete(name)
            connection.close()
