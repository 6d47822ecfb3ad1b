"""HTTP front of the order service (aiohttp): POST /orders, GET /stats, GET /healthz."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

from aiohttp import web

from sandbox_services.runtime.web import fault_middleware, json_body

from sandbox_services.async_messaging import knobs
from sandbox_services.broker.gauges import GaugeReporter
from sandbox_services.broker.publisher import AsyncPublisher, Publisher
from sandbox_services.async_messaging.services.consumers.client import ConsumerClient
from sandbox_services.runtime.serve import listen_http
from sandbox_services.runtime.spec import ServiceContext

from .backend import OrderBackend
from .interface import Order, OrderRefused

MAX_AMOUNT_CENTS = 10_000_000


def parse_order(data: dict) -> tuple[Order, str]:
    """Return the order and mode of a request body, or raise ValueError naming the field."""
    mode = data.get("mode", "async")
    if mode not in ("sync", "async"):
        raise ValueError("mode: must be sync or async")
    amount = data.get("amount_cents", 1000)
    if not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT_CENTS:
        raise ValueError(f"amount_cents: must be an integer in 1..{MAX_AMOUNT_CENTS}")
    email = data.get("customer_email", "learner@example.com")
    if not isinstance(email, str) or not 3 <= len(email) <= 200:
        raise ValueError("customer_email: must be a string of 3..200 characters")
    crash_in = data.get("crash_in", [])
    if not isinstance(crash_in, list) or not set(crash_in) <= set(knobs.CONSUMERS):
        raise ValueError(f"crash_in: must be a list drawn from {', '.join(knobs.CONSUMERS)}")
    order_id = data.get("order_id") or uuid.uuid4().hex
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= 64:
        raise ValueError("order_id: must be a string of 1..64 characters")
    return Order(order_id, email, amount, crash_in), mode


async def place_order(request: web.Request) -> web.Response:
    try:
        order, mode = parse_order(await json_body(request))
    except ValueError as error:
        return web.json_response({"detail": str(error)}, status=400)
    backend: OrderBackend = request.app["backend"]
    try:
        receipt = await backend.place_order(order, mode=mode)
    except OrderRefused as error:
        return web.json_response({"detail": str(error), "service": error.service}, status=503)
    if mode == "async":
        request.app["gauges"].add_many(knobs.CONSUMERS, "published")
    return web.json_response(
        {"order_id": receipt.order_id, "mode": receipt.mode, "told": receipt.told},
        status=201,
    )


async def stats(request: web.Request) -> web.Response:
    publisher: AsyncPublisher = request.app["publisher"]
    return web.json_response(vars(publisher.publisher.stats))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def main(ctx: ServiceContext) -> None:
    """Serve the order service until cancelled."""
    publisher = AsyncPublisher(
        Publisher(
            ctx.amqp_url,
            name=f"{ctx.prefix}orders",
            declare=partial(knobs.declare_all, prefix=ctx.prefix),
            retry_deadline_s=knobs.PUBLISH_RETRY_DEADLINE_S,
        )
    )
    consumers = {
        name: ConsumerClient(
            lambda name=name: ctx.address(name), timeout_s=knobs.SYNC_CALL_TIMEOUT_S
        )
        for name in knobs.CONSUMERS
    }
    gauges = GaugeReporter(ctx.redis_url, ctx.sandbox_id, f"orders-{ctx.replica}")
    gauges.start()
    # The learner's delay and error rate for this service (the runtime applies none).
    app = web.Application(middlewares=[fault_middleware(ctx.faults)])
    app["publisher"] = publisher
    app["gauges"] = gauges
    app["backend"] = OrderBackend(publisher=publisher, prefix=ctx.prefix, consumers=consumers)
    app.add_routes(
        [web.post("/orders", place_order), web.get("/stats", stats), web.get("/healthz", healthz)]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # Declare the topology before reporting healthy, so no early order is unroutable.
    await publisher.connect()
    await listen_http(ctx, runner)
    try:
        await asyncio.Event().wait()
    finally:
        gauges.stop()
        for client in consumers.values():
            await client.close()
        await publisher.close()
        await runner.cleanup()
