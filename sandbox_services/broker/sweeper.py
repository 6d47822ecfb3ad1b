"""Delete what a sandbox declared, and the streams of sandboxes that are gone.

Queues expire on their own (x-expires) but streams refuse it, and without the
management API nobody can list the broker's queues. So every stream a sandbox
declares is recorded in the Redis set ``keys.DECLARED_STREAMS``; the sweeper reads it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import pika.exceptions
import redis

from ..runtime import keys
from .connection import CONNECTION_ERRORS, connect
from .naming import sandbox_of

log = logging.getLogger(__name__)


def default_redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def record_stream(redis_url: str, name: str) -> None:
    """Remember a declared stream so the sweeper can delete it if teardown never comes."""
    redis.Redis.from_url(redis_url).sadd(keys.DECLARED_STREAMS, name)


def delete_objects(
    amqp_url: str, *, queues: Iterable[str] = (), exchanges: Iterable[str] = ()
) -> list[str]:
    """Delete queues (and streams) and exchanges by full name; return those that existed."""
    deleted: list[str] = []
    connection = connect(amqp_url, name="teardown", deadline_s=10.0)
    try:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                channel = connection.channel()
                try:
                    # Passive first: deleting a missing queue is not an error in
                    # RabbitMQ 3.10, so this is how we report what was really there.
                    if kind == "queue":
                        channel.queue_declare(name, passive=True)
                        channel.queue_delete(name)
                    else:
                        channel.exchange_declare(name, passive=True)
                        channel.exchange_delete(name)
                    deleted.append(name)
                except pika.exceptions.ChannelClosedByBroker:
                    pass  # already gone
                finally:
                    if channel.is_open:
                        channel.close()
    finally:
        if connection.is_open:
            connection.close()
    return deleted


def forget_streams(redis_url: str, names: Iterable[str]) -> None:
    names = list(names)
    if names:
        redis.Redis.from_url(redis_url).srem(keys.DECLARED_STREAMS, *names)


def sweep_orphan_streams(
    amqp_url: str, is_alive: Callable[[str], bool], *, redis_url: str | None = None
) -> list[str]:
    """Delete recorded streams whose sandbox is no longer alive; return their names."""
    redis_url = redis_url or default_redis_url()
    client = redis.Redis.from_url(redis_url)
    orphans = []
    for raw in client.smembers(keys.DECLARED_STREAMS):
        name = raw.decode()
        sandbox_id = sandbox_of(name)
        if sandbox_id is None or not is_alive(sandbox_id):
            orphans.append(name)
    if not orphans:
        return []
    try:
        deleted = delete_objects(amqp_url, queues=orphans)
    except CONNECTION_ERRORS as error:
        log.warning("stream sweep skipped: broker unreachable (%r)", error)
        return []
    forget_streams(redis_url, orphans)
    return deleted
