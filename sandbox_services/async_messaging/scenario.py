"""The experiments' handles on the async messaging sandbox, and the shape of their results."""

from __future__ import annotations

import random
import uuid

import aiohttp

from sandbox_services.broker.probes import percentile
from sandbox_services.async_messaging.services.consumers.client import (
    ConsumerClient,
    ConsumerUnavailable,
)
from sandbox_services.async_messaging.services.orders.client import OrdersHttpClient
from sandbox_services.async_messaging.services.orders.interface import Order
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs


class OrderServices:
    """The experiment's handles on the sandbox: the order service and the consumers."""

    def __init__(self, ctx: ExperimentContext) -> None:
        self.ctx = ctx
        self.orders = OrdersHttpClient(ctx.address("orders"))
        self.consumers = {
            name: ConsumerClient(lambda name=name: ctx.address(name)) for name in knobs.CONSUMERS
        }

    async def counts(self) -> dict[str, dict]:
        """Return each consumer's counts from its own store."""
        return {name: await client.stats() for name, client in self.consumers.items()}

    async def ensure_running(self, name: str) -> bool:
        """Start a consumer again if it is down (after a crash); return True if it was down."""
        try:
            await self.consumers[name].stats()
            return False
        except ConsumerUnavailable:  # no answer: the process is gone; anything else is a bug
            await self.ctx.control("start", name)
            return True

    async def reconnects(self) -> int:
        """Return how often the order service and the consumers have lost the broker."""
        total = 0
        for client in (self.orders, *self.consumers.values()):
            try:
                total += (await client.stats())["reconnects"]
            except (ConsumerUnavailable, aiohttp.ClientError, TimeoutError):
                continue  # a service the experiment stopped has no count to give
        return total

    async def resent(self) -> int | None:
        """Return how many publishes the order service re-sent after a lost connection."""
        try:
            return (await self.orders.stats())["resent"]
        except (aiohttp.ClientError, TimeoutError):
            return None  # stopped by the experiment: no count to give

    async def close(self) -> None:
        await self.orders.close()
        for client in self.consumers.values():
            await client.close()


def with_broker_report(
    result: dict, reconnects_before: int, reconnects_after: int, resent: int | None = None
) -> dict:
    """Add to a result what the services counted if the broker connection dropped."""
    lost = reconnects_after - reconnects_before
    if lost > 0:
        resent_note = (
            "" if resent is None else f"; the order service re-sent {resent} unconfirmed publishes"
        )
        result.setdefault("notes", []).append(
            f"The broker connection dropped {lost} time(s) during the run, by the services' "
            f"own count of their reconnects{resent_note}."
        )
    return result


def reported(experiment):
    """Wrap an experiment so its result says whether the broker connection dropped."""

    async def run(ctx: ExperimentContext, params: dict) -> dict:
        lab = OrderServices(ctx)
        try:
            before, resent_before = await lab.reconnects(), await lab.resent()
            result = await experiment(ctx, params)
            resent_after = await lab.resent()
            resent = None if None in (resent_before, resent_after) else resent_after - resent_before
            return with_broker_report(result, before, await lab.reconnects(), resent)
        finally:
            await lab.close()

    run.__doc__ = experiment.__doc__
    run.__name__ = experiment.__name__
    return run


def new_order(**fields) -> Order:
    return Order(
        uuid.uuid4().hex,
        fields.pop("customer_email", "learner@example.com"),
        fields.pop("amount_cents", random.randint(100, 50_000)),
        **fields,
    )


def latency_row(name: str, values: list[float]) -> dict:
    return {
        "name": name,
        "values": [percentile(values, 0.5), percentile(values, 0.99), max(values or [0])],
    }


async def distinct_at_least(client: ConsumerClient, expected: int) -> bool:
    return (await client.stats())["distinct"] >= expected


async def all_caught_up(lab: OrderServices, before: dict[str, int], total: int) -> bool:
    counts = await lab.counts()
    return all(counts[name]["distinct"] - before[name] >= total for name in knobs.CONSUMERS)
