"""Run one consumer: its queue consumer and its HTTP side, sharing one backend and store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sandbox_services.async_messaging import knobs
from sandbox_services.broker.gauges import GaugeReporter
from sandbox_services.runtime.serve import listen_http
from sandbox_services.runtime.spec import ServiceContext

from ..mail_provider.client import MailProviderClient
from .backend import ConsumerBackend
from .server_amqp import QueueConsumer
from .server_http import make_app
from .store import ConsumerStore


def open_store(ctx: ServiceContext) -> ConsumerStore:
    """Open this consumer's store: one SQLite file per service, in the sandbox workdir."""
    store = ConsumerStore(ctx.workdir / f"{ctx.name}.sqlite3")
    if not store.settings().prefetch:
        store.configure(prefetch=knobs.DEFAULT_PREFETCH)
    return store


async def main(ctx: ServiceContext) -> None:
    """Serve one consumer (ctx.name is email, audit or analytics) until cancelled."""
    if ctx.name not in knobs.CONSUMERS:
        raise ValueError(f"unknown consumer {ctx.name!r}")
    mail = None
    if ctx.name == "email":
        mail = MailProviderClient(lambda: ctx.address(knobs.MAIL_PROVIDER))
    backend = ConsumerBackend(
        name=ctx.name, replica=ctx.replica, store=open_store(ctx), faults=ctx.faults, mail=mail
    )
    gauges = GaugeReporter(ctx.redis_url, ctx.sandbox_id, f"{ctx.name}-{ctx.replica}")
    gauges.start()
    consumer = QueueConsumer(ctx, backend, gauges)
    thread = consumer.start()
    runner = web.AppRunner(
        make_app(backend, consumer.loop.subscribed, consumer.loop.stats, consumer.loop.wake),
        access_log=None,
    )
    await runner.setup()
    # Healthy only once subscribed: an experiment may count on this consumer at once.
    await asyncio.to_thread(consumer.loop.subscribed.wait, 30)
    await listen_http(ctx, runner)
    try:
        await asyncio.Event().wait()
    finally:
        consumer.stop.set()
        consumer.loop.wake()
        await asyncio.to_thread(thread.join, 5)
        gauges.stop()
        await runner.cleanup()
