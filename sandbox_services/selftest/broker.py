"""RabbitMQ names of the selftest lab, its teardown and its metrics hook."""

from __future__ import annotations

import asyncio

import pika

from sandbox_services.runtime.spec import ExperimentContext

# The queue vanishes on its own 60 s after its last consumer, if teardown never runs.
QUEUE_ARGUMENTS = {"x-expires": 60_000}


def queue_name(prefix: str) -> str:
    """Return the selftest queue of a sandbox."""
    return f"{prefix}selftest.inbox"


def _delete_queue(amqp_url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


async def teardown(ctx: ExperimentContext) -> None:
    """Delete the sandbox's queue."""
    await asyncio.to_thread(_delete_queue, ctx.amqp_url, queue_name(ctx.prefix))


_ticks = 0


async def metrics(ctx: ExperimentContext) -> dict:
    """Return a counter that grows once a poll, enough to see the metrics path work."""
    global _ticks
    _ticks += 1
    return {"ticks": _ticks}
