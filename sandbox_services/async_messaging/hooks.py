"""Teardown and live gauges of the async messaging lesson."""

from __future__ import annotations

import asyncio

from sandbox_services.broker.gauges import forget_gauges, queue_gauges
from sandbox_services.broker.sweeper import delete_objects
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs


async def metrics(ctx: ExperimentContext) -> dict:
    """Return per-queue gauges: {"queues": {short name: {depth, unacked, consumers, ...}}}."""
    return await asyncio.to_thread(
        queue_gauges,
        amqp_url=ctx.amqp_url,
        redis_url=ctx.redis_url,
        sandbox_id=ctx.sandbox_id,
        prefix=ctx.prefix,
        queues=knobs.queue_names(),
    )


async def teardown(ctx: ExperimentContext) -> None:
    """Delete every queue and exchange of the sandbox, and its gauge keys."""
    await asyncio.to_thread(
        delete_objects,
        ctx.amqp_url,
        queues=[
            *(ctx.prefix + name for name in knobs.queue_names()),
            # Declared by runs, not by the services: the bounded queues and the partitions.
            *(knobs.bounded_queue(ctx.prefix, overflow) for overflow in knobs.OVERFLOW_MODES),
            *knobs.partition_queues(ctx.prefix),
            *(knobs.guard_queue(ctx.prefix, kind) for kind in knobs.GUARD_KINDS),
            *(knobs.guard_queue(ctx.prefix, kind) + ".dead" for kind in knobs.GUARD_KINDS),
        ],
        exchanges=[ctx.prefix + knobs.EXCHANGE, ctx.prefix + knobs.PARTITION_EXCHANGE],
    )
    await asyncio.to_thread(forget_gauges, ctx.redis_url, ctx.sandbox_id)
