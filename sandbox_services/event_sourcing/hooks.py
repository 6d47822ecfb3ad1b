"""Teardown and live gauges of the event sourcing lesson."""

from __future__ import annotations

import asyncio

import aiohttp

from sandbox_services.event_sourcing.services.accounts.client import AccountsClient
from sandbox_services.event_sourcing.services.projector.client import ProjectorClient
from sandbox_services.event_sourcing.services.projector.interface import ViewError
from sandbox_services.broker.gauges import forget_gauges, queue_gauges
from sandbox_services.broker.sweeper import delete_objects, forget_streams
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs


async def metrics(ctx: ExperimentContext) -> dict:
    """Return {"queues": {...}} for the log and the compare queue, and each view's lag."""
    gauges = await asyncio.to_thread(
        queue_gauges,
        amqp_url=ctx.amqp_url,
        redis_url=ctx.redis_url,
        sandbox_id=ctx.sandbox_id,
        prefix=ctx.prefix,
        queues=[knobs.COMPARE_QUEUE],
        streams=[knobs.STREAM],
    )
    accounts, client = _clients(ctx)
    try:
        # The aggregate knows the log's length exactly; a stream's declare-ok count is
        # not it (reading never lowers it, and it lags the log).
        head = gauges["queues"][knobs.STREAM]["depth"] = await accounts.head()
        views = await client.views()
        # A stream's declare-ok reports no consumers; each view reads it with one.
        gauges["queues"][knobs.STREAM]["consumers"] = len(views)
        gauges["views"] = {
            name: {"next_offset": v["next_offset"], "lag": max(0, head - v["events"])}
            for name, v in views.items()
        }
    except (aiohttp.ClientError, TimeoutError, ViewError):
        # The accounts or the projector is stopped or still starting (the learner can
        # stop either): no views this second, the queue gauges still go out. Any other
        # error is a bug, and the runtime's metrics loop logs it.
        gauges["views"] = {}
    return gauges


# The gauges process asks every second from one event loop: its clients (and their
# keep-alive connections) live as long as that loop, which is while someone watches.
_kept: dict[str, tuple[asyncio.AbstractEventLoop, AccountsClient, ProjectorClient]] = {}


def _clients(ctx: ExperimentContext) -> tuple[AccountsClient, ProjectorClient]:
    loop = asyncio.get_running_loop()
    kept = _kept.get(ctx.sandbox_id)
    if kept is None or kept[0] is not loop:  # a client belongs to the loop that made it
        kept = _kept[ctx.sandbox_id] = (
            loop,
            AccountsClient(ctx.address("accounts"), timeout_s=1.0),
            ProjectorClient(ctx.address("projector"), timeout_s=1.0),
        )
    return kept[1], kept[2]


async def close_clients(sandbox_id: str) -> None:
    """Close the gauges' clients of a sandbox, on the loop that made them (before it ends)."""
    kept = _kept.pop(sandbox_id, None)
    if kept is not None:
        await kept[1].close()
        await kept[2].close()


async def teardown(ctx: ExperimentContext) -> None:
    """Delete the stream, the compare queue and the exchange; forget the stream and gauges."""
    stream = ctx.prefix + knobs.STREAM
    await asyncio.to_thread(
        delete_objects,
        ctx.amqp_url,
        queues=[
            stream,
            ctx.prefix + knobs.COMPARE_QUEUE,
            ctx.prefix + knobs.RETENTION_STREAM,
        ],
        exchanges=[ctx.prefix + knobs.EXCHANGE],
    )
    await asyncio.to_thread(
        forget_streams, ctx.redis_url, [stream, ctx.prefix + knobs.RETENTION_STREAM]
    )
    await asyncio.to_thread(forget_gauges, ctx.redis_url, ctx.sandbox_id)
