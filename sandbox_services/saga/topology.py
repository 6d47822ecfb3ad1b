"""The saga's RabbitMQ names and declarations: all under the sandbox prefix, all expiring."""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from sandbox_services.broker.naming import full_name, queue_arguments

from sandbox_services.saga.choreography import subscriptions
from sandbox_services.saga.interface import SERVICES


def exchange_name(prefix: str) -> str:
    """Return the topic exchange every choreography event goes through."""
    return full_name(prefix, "saga.events")


def queue_name(prefix: str, service: str) -> str:
    """Return a participant's own event queue."""
    return full_name(prefix, f"saga.{service}")


def all_queue_names(prefix: str) -> list[str]:
    """Return every queue the lesson declares (for teardown and metrics)."""
    return [queue_name(prefix, service) for service in SERVICES]


def declare_exchange(channel: BlockingChannel, prefix: str) -> None:
    """Declare the events exchange; it deletes itself once no queue is bound to it."""
    channel.exchange_declare(
        exchange_name(prefix), exchange_type="topic", durable=True, auto_delete=True
    )


def declare_queue(channel: BlockingChannel, prefix: str, service: str, expires_ms: int) -> str:
    """Declare a participant's durable queue (expiring when abandoned) and bind its events."""
    declare_exchange(channel, prefix)
    name = queue_name(prefix, service)
    channel.queue_declare(name, durable=True, arguments=queue_arguments(expires_ms))
    for event in subscriptions(service):
        channel.queue_bind(name, exchange_name(prefix), routing_key=event)
    return name
