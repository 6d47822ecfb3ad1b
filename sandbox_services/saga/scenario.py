"""Drive sagas through the live services: start them, wait for their end, measure them.

The experiments are written against this; it talks to the services only
through their gRPC clients (and, for the out-of-order case, the broker).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path

import grpc
import pika

from sandbox_services.runtime.params import ParameterError
from sandbox_services.saga.services.coordinator.client import CoordinatorClient
from sandbox_services.saga.services.orders.client import OrdersClient
from sandbox_services.saga.services.participant.client import ParticipantClient
from sandbox_services.saga.interface import FAIL_KINDS, FAILABLE_SERVICES, STEPS, FaultPlan, Order
from sandbox_services.saga.topology import exchange_name

from . import invariants
from .knobs import TIMEOUTS, SagaConfig
from .stores import read_only, rows_for

# Sagas started at once; more wait for a free slot (keeps the gRPC queues short).
START_CONCURRENCY = 32
POLL_S = 0.05
# Tries of a saga's first call before the run gives up on it (faults may refuse some).
START_ATTEMPTS = 6


def check_crash_order(target: str, after_step: str, fail_at: str | None) -> None:
    """Refuse a failure placed before the crash point: the crash would then never happen."""
    crash_point = after_step if target == "coordinator" else target
    if fail_at is not None and _step_index(fail_at) <= _step_index(crash_point):
        raise ParameterError(
            "then_fail_at", f"must be a step after {crash_point} (the crash point), got {fail_at}"
        )


def _step_index(service: str) -> int:
    return [step.service for step in STEPS].index(service)


def modes_of(choice: str) -> list[str]:
    """Return the modes a "mode" parameter asks for."""
    return ["choreography", "orchestration"] if choice == "both" else [choice]


def new_order(
    config: SagaConfig,
    plan: FaultPlan | None = None,
    *,
    quantity: int = 1,
    amount_cents: int = 1999,
    rng: random.Random | None = None,
) -> Order:
    """Return a fresh order (its own saga id) with an optional fault plan."""
    rng = rng or random.Random()
    saga_id = uuid.uuid4().hex
    return Order(
        saga_id=saga_id,
        order_id=f"ord-{saga_id[:8]}",
        customer="learner",
        sku=rng.choice(config.skus),
        quantity=quantity,
        amount_cents=amount_cents,
        plan=plan or FaultPlan(),
    )


def random_plan(rng: random.Random, probability: float, kind: str) -> FaultPlan:
    """Let each failable step fail with ``probability``; the first that does is the failure."""
    for service in FAILABLE_SERVICES:
        if rng.random() < probability:
            fail_kind = rng.choice(FAIL_KINDS) if kind == "mixed" else kind
            return FaultPlan(fail_at=service, fail_kind=fail_kind)  # type: ignore[arg-type]
    return FaultPlan()


class SagaDriver:
    """The experiment's handle on the live sandbox."""

    def __init__(self, ctx, experiment: str) -> None:
        self.ctx = ctx
        self.config = SagaConfig.from_settings(ctx.settings)
        self.workdir = Path(ctx.workdir)
        # The whole run's waiting budget; ``deadline`` is the current mode's share of it.
        self.run_deadline = time.monotonic() + TIMEOUTS[experiment] * self.config.wait_fraction
        self.deadline = self.run_deadline
        self.channels = {
            name: grpc.aio.insecure_channel(ctx.address(name))
            for name in ("orders", "coordinator", "payments")
        }
        self.orders = OrdersClient(self.channels["orders"])
        self.coordinator = CoordinatorClient(self.channels["coordinator"])

    def share_time(self, modes_left: int) -> None:
        """Give the next mode an equal share of the waiting time left in the run.

        Modes run one after the other: without a share each, a first saga that
        is stuck would spend the whole budget and the second get no time at all.
        Time the first mode did not need goes to the next.
        """
        now = time.monotonic()
        self.deadline = now + max(0.0, self.run_deadline - now) / max(1, modes_left)

    async def close(self) -> None:
        """Close the gRPC channels."""
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def start(self, mode: str, order: Order) -> None:
        """Start one saga: place the order (choreography) or ask the coordinator (orchestration)."""
        # Both entry points are idempotent per saga id, so a call the learner's
        # error fault refused can simply be sent again.
        for attempt in range(START_ATTEMPTS):
            try:
                if mode == "choreography":
                    await self.orders.place_order(order)
                else:
                    await self.coordinator.start_saga(order)
                return
            except grpc.aio.AioRpcError as error:
                retriable = error.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
                if not retriable or attempt + 1 == START_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)

    async def run(self, mode: str, orders: list[Order]) -> list[str]:
        """Start every saga, wait for all to end; return the ids still running at the deadline."""
        slots = asyncio.Semaphore(START_CONCURRENCY)

        async def start_one(order: Order) -> None:
            async with slots:
                await self.start(mode, order)

        await asyncio.gather(*(start_one(order) for order in orders))
        return await self.wait(mode, [order.saga_id for order in orders])

    async def wait(self, mode: str, saga_ids: list[str]) -> list[str]:
        """Poll until every saga ended (and its events went out); return those still running."""
        pending = list(saga_ids)
        while pending and time.monotonic() < self.deadline:
            try:
                pending = await self.unfinished(mode, pending)
            except grpc.aio.AioRpcError:
                pass  # a service is down (the crash experiment): keep waiting for it
            if pending:
                await asyncio.sleep(POLL_S)
        if not pending and mode == "choreography":
            await self._outboxes_drained(saga_ids)
        return pending

    async def unfinished(self, mode: str, saga_ids: list[str]) -> list[str]:
        """Return which of these sagas have not ended yet, asking the services."""
        if mode == "choreography":
            statuses = await self.orders.statuses(saga_ids)
            return [s for s in saga_ids if statuses.get(s) not in ("approved", "rejected")]
        states = await self.coordinator.states(saga_ids)
        return [s for s in saga_ids if s not in states or not states[s].finished]

    async def _outboxes_drained(self, saga_ids: list[str]) -> None:
        # The order is final, but the last event (OrderApproved/Rejected) may
        # still sit in the outbox for a few milliseconds: let the relay finish.
        while time.monotonic() < self.deadline:
            left = await asyncio.to_thread(_unpublished, self.workdir, saga_ids)
            if not left:
                return
            await asyncio.sleep(POLL_S)

    async def wait_paused(self, saga_id: str) -> bool:
        """Wait until the coordinator holds this saga between two steps."""
        while time.monotonic() < self.deadline:
            states = await self.coordinator.states([saga_id])
            if saga_id in states and (states[saga_id].paused or states[saga_id].finished):
                return states[saga_id].paused
            await asyncio.sleep(POLL_S)
        return False

    async def wait_down(self, service: str) -> bool:
        """Wait until the supervisor has seen the service's process exit (it crashed).

        Not a failed health check: a loaded machine lets one time out while the
        process lives, and the restart that follows would then find it running,
        change nothing, and leave it down for good once it did exit.
        """
        while time.monotonic() < self.deadline:
            states = await self.ctx.control("status", service)
            if states.get(service, {}).get("state") in ("crashed", "stopped", "failed"):
                return True
            await asyncio.sleep(POLL_S)
        return False

    async def refund_first(self, order: Order) -> str:
        """Send payments the refund for a saga it has not charged yet (out of order)."""
        client = ParticipantClient("payments", self.channels["payments"], 5.0)
        return (await client.execute("refund", order)).status

    async def publish_event(self, event: str, order: Order) -> None:
        """Publish one choreography event straight to the exchange, as a stray redelivery would."""
        body = {
            "message_id": uuid.uuid4().hex,
            "event": event,
            "saga_id": order.saga_id,
            "order": order.to_dict(),
            "detail": "published by the experiment, out of order",
        }
        await asyncio.to_thread(
            _publish, self.ctx.amqp_url, exchange_name(self.ctx.prefix), event, json.dumps(body)
        )

    async def wait_recorded(self, service: str, saga_id: str, step: str) -> dict | None:
        """Wait until a service's step log holds a row for this saga's step; return it (or None)."""
        while time.monotonic() < self.deadline:
            rows = await asyncio.to_thread(_step_rows, self.workdir, service, saga_id, step)
            if rows:
                return rows[0]
            await asyncio.sleep(POLL_S / 5)
        return None

    def remaining_s(self) -> float:
        """Return the waiting time left in the current mode's share of this run."""
        return max(0.0, self.deadline - time.monotonic())


def latencies_ms(workdir: Path, mode: str, saga_ids: list[str]) -> list[float]:
    """Return each ended saga's duration as its own stores recorded it (start to final state)."""
    if mode == "orchestration":
        service, query = (
            "coordinator",
            "SELECT started_ns, updated_ns FROM sagas WHERE phase = 'finished'",
        )
    else:
        service, query = (
            "orders",
            "SELECT created_ns, updated_ns FROM orders WHERE status != 'pending'",
        )
    with read_only(workdir, service) as conn:
        return sorted((row[1] - row[0]) / 1e6 for row in rows_for(conn, query, saga_ids))


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of sorted values (0.0 for none)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(fraction * len(values) + 0.5) - 1))]


def outcome_counts(workdir: Path, saga_ids: list[str]) -> dict[str, int]:
    """Return how many of these sagas were approved, rejected or are still running."""
    with read_only(workdir, "orders") as conn:
        status = {
            r["saga_id"]: r["status"]
            for r in rows_for(conn, "SELECT saga_id, status FROM orders", saga_ids)
        }
    counts = {"approved": 0, "rejected": 0, "running": 0}
    for saga_id in saga_ids:
        value = status.get(saga_id)
        counts[value if value in ("approved", "rejected") else "running"] += 1
    return counts


def deliveries(workdir: Path, saga_ids: list[str]) -> list[list]:
    """Return per service: rows received, applied, repeats ignored, tombstones/no-ops."""
    table = []
    for service in ("orders", "payments", "inventory", "shipping"):
        with read_only(workdir, service) as conn:
            rows = rows_for(conn, "SELECT status FROM step_log", saga_ids)
        statuses = [row["status"] for row in rows]
        table.append(
            [
                service,
                len(statuses),
                statuses.count("done"),
                statuses.count("duplicate"),
                statuses.count("noop"),
            ]
        )
    return table


def still_running_note(mode: str, running: list[str]) -> str:
    """Say plainly that some sagas had not ended: never report them as a success."""
    return (
        f"{len(running)} {mode} saga(s) were still running when the run's time was up; "
        "they are reported as running, not as a success. They finish or compensate on "
        "their own while the sandbox lives."
    )


def check(workdir: Path, mode: str, saga_ids: list[str]) -> list[dict]:
    """Return the invariants for these sagas."""
    return invariants.check(workdir, saga_ids, mode=mode)


def _step_rows(workdir: Path, service: str, saga_id: str, step: str) -> list[dict]:
    with read_only(workdir, service) as conn:
        rows = rows_for(conn, "SELECT * FROM step_log", [saga_id])
    return sorted((dict(row) for row in rows if row["step"] == step), key=lambda row: row["id"])


def _unpublished(workdir: Path, saga_ids: list[str]) -> int:
    count = 0
    for service in ("orders", "payments", "inventory", "shipping"):
        with read_only(workdir, service) as conn:
            count += len(
                rows_for(conn, "SELECT id FROM outbox WHERE published_ns IS NULL", saga_ids)
            )
    return count


def _publish(amqp_url: str, exchange: str, routing_key: str, body: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            body.encode(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2),
        )
    finally:
        connection.close()
