"""The five experiments of the async messaging lesson.

Each takes the learner's parameters (checked against ``knobs.PARAMETERS`` before the run),
drives the live services through their clients and ``ctx.control``, and returns
a result in the shape of ``runtime.spec.RESULT_SHAPE``.
"""

from __future__ import annotations

import asyncio
import random
import time


from sandbox_services.runtime.params import ParameterError
from sandbox_services.broker.probes import DepthSampler, percentile, wait_until
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs, dead_letters
from .backpressure import queue_length_limit as queue_length_limit
from .delivery_limit import delivery_limit as delivery_limit
from .external_effects import external_side_effect as external_side_effect
from .partitions import partitions as partitions
from .reports import (
    LOAD_SAMPLE_RATIO,
    at_least_once_headline,
    at_least_once_note,
    competing_summary,
    depth_rates,
    poison_headline,
    sampling_note,
    sync_vs_async_headline,
)
from .scenario import (
    OrderServices,
    all_caught_up,
    distinct_at_least,
    latency_row,
    new_order,
    reported,
)


@reported
async def sync_vs_async(ctx: ExperimentContext, p: dict) -> dict:
    """Place orders both ways; then break email and place one more of each."""
    lab = OrderServices(ctx)
    try:
        latencies: dict[str, list[float]] = {"sync": [], "async": []}
        for i in range(p["orders"]):
            for mode in ("sync", "async"):
                elapsed, error = await lab.orders.timed_order(new_order(), mode=mode)
                if error is None:
                    latencies[mode].append(elapsed)
            await ctx.progress(0.5 * (i + 1) / p["orders"], "healthy orders")
        rows = []
        before = (await lab.consumers["email"].stats())["distinct"]
        fault = p["email_fault"]
        if fault == "stop":
            await ctx.control("stop", "email")
        elif fault == "slow":
            await ctx.control("delay", "email", delay_ms=p["slow_ms"])
        for mode in ("sync", "async"):
            elapsed, error = await lab.orders.timed_order(new_order(), mode=mode)
            rows.append([mode, f"email {fault}", round(elapsed, 1), error or "accepted"])
        await ctx.progress(0.75, "fault phase done; restoring email")
        if fault == "stop":
            await ctx.control("start", "email")
        elif fault == "slow":
            await ctx.control("clear", "email")
        # The async order's email goes out once email is back: its queue kept the event.
        expected = before + (1 if fault == "stop" else 2)
        delivered = await wait_until(
            lambda: distinct_at_least(lab.consumers["email"], expected), timeout_s=20
        )
        sync_p50, async_p50 = (
            percentile(latencies["sync"], 0.5),
            percentile(latencies["async"], 0.5),
        )
        sync_failed = fault == "stop" and rows[0][3] != "accepted"
        return {
            "headline": sync_vs_async_headline(
                sync_p50=sync_p50,
                async_p50=async_p50,
                fault=fault,
                outcomes={row[0]: row[3] for row in rows},
            ),
            "summary": [
                {"label": "sync p50", "value": sync_p50, "unit": "ms"},
                {"label": "async p50", "value": async_p50, "unit": "ms"},
                {"label": "email caught up", "value": delivered, "unit": ""},
            ],
            "charts": [
                {
                    "title": "Caller's latency, healthy services",
                    "type": "bar",
                    "x_label": "percentile",
                    "y_label": "ms",
                    "categories": ["p50", "p99", "max"],
                    "series": [
                        latency_row("sync", latencies["sync"]),
                        latency_row("async", latencies["async"]),
                    ],
                }
            ],
            "table": {"columns": ["mode", "condition", "latency ms", "outcome"], "rows": rows},
            "notes": [
                "The async order's email was sent after email came back."
                if delivered
                else "Email had not caught up within 20 s."
            ],
            "ok": delivered and (fault != "stop" or sync_failed),
        }
    finally:
        await lab.close()


# Orders placed with every consumer healthy, before the fault: the "before" latency.
WARM_UP_ORDERS = 5


def decoupling_headline(
    *,
    victim: str,
    fault: str,
    peak: int,
    p50_ms: float,
    orders: int,
    caught_up: bool,
    seen: dict[str, int],
) -> str:
    """Say what temporal decoupling showed, in the terms of the learner's parameters."""
    total = WARM_UP_ORDERS + orders
    if not caught_up:
        return f"Not every consumer caught up: {seen} of {total} orders."
    # A stopped consumer is restarted; a slow one has its delay cleared.
    back = "after the restart" if fault == "stop" else "once the delay was cleared"
    state = "stopped" if fault == "stop" else "slow"
    return (
        f"{victim}'s queue rose to {peak} while the producer's p50 stayed at {p50_ms} ms; "
        f"{back} every consumer saw the {orders} orders placed while {victim} was {state} "
        f"(and the {WARM_UP_ORDERS} placed before)."
    )


def replica_shares(before: dict[str, int], after: dict[str, int], replicas: int) -> dict[str, int]:
    """Return each replica's orders of this run: the replicas it ran, not those of earlier runs."""
    shares = {replica: count - before.get(replica, 0) for replica, count in after.items()}
    return {
        replica: count
        for replica, count in sorted(shares.items())
        if int(replica) < replicas or count > 0
    }


def replicas_phrase(replicas: int, scale: str) -> str:
    """Return "1 analytics replica" or "3 analytics replicas (added after the orders)"."""
    if replicas == 1:
        return "1 analytics replica"
    return f"{replicas} analytics replicas (added {scale} the orders)"


@reported
async def temporal_decoupling(ctx: ExperimentContext, p: dict) -> dict:
    """Keep orders flowing while one consumer is stopped or slow; watch its queue."""
    if p["orders"] / p["rate"] > knobs.MAX_LOAD_SECONDS:
        raise ParameterError("rate", f"orders / rate must be at most {knobs.MAX_LOAD_SECONDS} s")
    lab = OrderServices(ctx)
    victim = p["consumer"]
    sampler = DepthSampler(ctx.amqp_url, {victim: ctx.prefix + victim})
    try:
        before = {name: stats["distinct"] for name, stats in (await lab.counts()).items()}
        sampler.start()
        sampled_from = time.monotonic()  # the sampler's clock, for the fill and drain rates
        healthy = [
            (await lab.orders.timed_order(new_order(), mode="async"))[0]
            for _ in range(WARM_UP_ORDERS)
        ]
        if p["fault"] == "stop":
            await ctx.control("stop", victim)
        else:
            await ctx.control("delay", victim, delay_ms=p["slow_ms"])
        fault_at = time.monotonic() - sampled_from
        during: list[float] = []
        errors = 0
        interval = 1 / p["rate"]
        started = time.monotonic()
        for i in range(p["orders"]):
            elapsed, error = await lab.orders.timed_order(new_order(), mode="async")
            during.append(elapsed)
            errors += error is not None
            await asyncio.sleep(max(0.0, started + (i + 1) * interval - time.monotonic()))
            if i % 10 == 0:
                await ctx.progress(
                    0.6 * i / p["orders"], f"{victim} {p['fault']}: {i} orders placed"
                )
        peak = max((point[1] for point in sampler.points[victim]), default=0)
        await ctx.progress(0.6, f"restoring {victim}; watch its queue drain")
        # Taken before the restore: a restarted consumer may drain the queue before its start
        # is confirmed.
        restored_at = time.monotonic() - sampled_from
        await ctx.control("start" if p["fault"] == "stop" else "clear", victim)
        total = WARM_UP_ORDERS + p["orders"]
        caught_up = await wait_until(
            lambda: all_caught_up(lab, before, total), timeout_s=60, every_s=0.25
        )
        await asyncio.sleep(0.5)  # one more depth sample at zero for the chart
        await sampler.stop()
        seen = {
            name: stats["distinct"] - before[name] for name, stats in (await lab.counts()).items()
        }
        rates = depth_rates(sampler.points[victim], fault_at=fault_at, restored_at=restored_at)
        return {
            "headline": decoupling_headline(
                victim=victim,
                fault=p["fault"],
                peak=peak,
                p50_ms=percentile(during, 0.5),
                orders=p["orders"],
                caught_up=caught_up,
                seen=seen,
            ),
            "summary": [
                {"label": "peak depth", "value": peak, "unit": "messages"},
                {"label": "producer p50 before", "value": percentile(healthy, 0.5), "unit": "ms"},
                {"label": "producer p50 during", "value": percentile(during, 0.5), "unit": "ms"},
                {"label": "orders refused", "value": errors, "unit": ""},
                {"label": "filled at", "value": rates["filled at"], "unit": "messages/s"},
                {"label": "drained at", "value": rates["drained at"], "unit": "messages/s"},
            ],
            "charts": [
                {
                    "title": f"{victim} queue depth",
                    "type": "line",
                    "x_label": "s",
                    "y_label": "messages",
                    "series": [{"name": victim, "points": sampler.points[victim]}],
                },
                {
                    "title": "Producer latency",
                    "type": "bar",
                    "x_label": "percentile",
                    "y_label": "ms",
                    "categories": ["p50", "p99", "max"],
                    "series": [
                        latency_row("before", healthy),
                        latency_row(f"{victim} {p['fault']}", during),
                    ],
                },
            ],
            "table": {
                "columns": ["consumer", "orders seen", "orders placed"],
                "rows": [[name, seen[name], total] for name in knobs.CONSUMERS],
            },
            "notes": [
                "Both rates are read from depth samples 0.2 s apart: the drain rate is a lower "
                "bound, and after a stop it includes the consumer's restart."
            ],
            "ok": caught_up and errors == 0,
        }
    finally:
        await sampler.stop()
        await ctx.control("clear", victim)
        await lab.close()


@reported
async def at_least_once(ctx: ExperimentContext, p: dict) -> dict:
    """Crash a consumer after its work and before its ack; count what happens twice."""
    if p["crashes"] > p["orders"]:
        raise ParameterError("crashes", f"must not exceed orders ({p['orders']})")
    lab = OrderServices(ctx)
    name = p["consumer"]
    client = lab.consumers[name]
    try:
        previous = await client.configure()
        # Prefetch 1: only the crashing message is unacked when the process dies.
        await client.configure(idempotent=p["idempotent"], prefetch=1)

        async def prefetch_is_one() -> bool:
            return (await client.stats()).get("prefetch_applied") == 1

        # Orders sent before the consumer re-subscribes would arrive in a window of
        # the old prefetch: a crash would take the next marked order down unacked too.
        await wait_until(prefetch_is_one, timeout_s=10, every_s=0.1)
        before = await client.stats()
        prefetch_applied = before.get("prefetch_applied")
        crash_at = set(random.sample(range(p["orders"]), p["crashes"]))
        for i in range(p["orders"]):
            order = new_order(crash_in=[name] if i in crash_at else [])
            await lab.orders.place_order(order, mode="async")
        restarts = 0

        async def drained() -> bool:
            nonlocal restarts
            restarts += await lab.ensure_running(name)
            return (await client.stats())["distinct"] - before["distinct"] >= p["orders"]

        done = await wait_until(drained, timeout_s=60, every_s=0.2)
        after = await client.stats()
        await client.configure(prefetch=previous["prefetch"])
        effects = after["effects"] - before["effects"]
        distinct = after["distinct"] - before["distinct"]
        crashes = after["counters"].get("crashes", 0) - before["counters"].get("crashes", 0)
        duplicates = effects - distinct
        redelivered = after["counters"].get("redelivered", 0) - before["counters"].get(
            "redelivered", 0
        )
        expected_effects = p["orders"] if p["idempotent"] else p["orders"] + crashes
        return {
            "headline": at_least_once_headline(
                consumer=name, crashes=crashes, effects=effects, distinct=distinct
            ),
            "summary": [
                {"label": "orders", "value": p["orders"], "unit": ""},
                {"label": "crashes", "value": crashes, "unit": ""},
                {"label": "effects", "value": effects, "unit": ""},
                {"label": "duplicates", "value": duplicates, "unit": ""},
                {"label": "restarts", "value": restarts, "unit": ""},
            ],
            "table": {
                "columns": ["", "count"],
                "rows": [
                    ["orders placed", p["orders"]],
                    ["distinct orders handled", distinct],
                    ["effects (emails sent)", effects],
                    ["duplicates", duplicates],
                    ["crashes", crashes],
                ],
            },
            "notes": [
                at_least_once_note(
                    prefetch_applied=prefetch_applied, redelivered=redelivered, crashes=crashes
                )
            ],
            "ok": done and distinct == p["orders"] and effects == expected_effects,
        }
    finally:
        await lab.ensure_running(name)
        await lab.close()


@reported
async def poison_messages(ctx: ExperimentContext, p: dict) -> dict:
    """Send one order email can never handle; watch it retried, dead-lettered, sent back."""
    lab = OrderServices(ctx)
    email = lab.consumers["email"]
    dead, queue = ctx.prefix + "email" + knobs.DEAD_SUFFIX, ctx.prefix + "email"
    try:
        before = await email.stats()
        for _ in range(p["good_orders"]):
            await lab.orders.place_order(new_order(), mode="async")
        poison = new_order(customer_email=knobs.POISON_EMAIL)
        await lab.orders.place_order(poison, mode="async")
        await ctx.progress(0.3, "poison order placed; email retries it")
        letter = None

        async def landed() -> bool:
            nonlocal letter
            letter = await asyncio.to_thread(dead_letters.peek, ctx.amqp_url, dead)
            return letter is not None and letter["message_id"] == poison.order_id

        in_dead_queue = await wait_until(landed, timeout_s=20, every_s=0.2)
        good_done = await wait_until(
            lambda: distinct_at_least(email, before["distinct"] + p["good_orders"]), timeout_s=20
        )
        mid = await email.stats()
        rows = [
            ["good orders handled", mid["distinct"] - before["distinct"]],
            ["retries", mid["counters"].get("retried", 0) - before["counters"].get("retried", 0)],
            [
                "dead-lettered",
                mid["counters"].get("dead_lettered", 0)
                - before["counters"].get("dead_lettered", 0),
            ],
        ]
        outcome = "left in the dead-letter queue"
        if in_dead_queue and p["send_back"]:
            await ctx.progress(0.7, "sending the repaired message back")
            await asyncio.to_thread(dead_letters.send_back, ctx.amqp_url, dead, queue, True)
            handled = await wait_until(
                lambda: distinct_at_least(email, mid["distinct"] + 1), timeout_s=20
            )
            outcome = "repaired, sent back and handled" if handled else "sent back, not handled yet"
        rows.append(["poison message", outcome])
        landed_letter = letter if in_dead_queue else None
        return {
            "headline": poison_headline(
                letter=landed_letter,
                good_handled=mid["distinct"] - before["distinct"],
                good_placed=p["good_orders"],
                outcome=outcome,
            ),
            "summary": [
                # None, not 0, when the letter was never read: nothing was counted.
                {
                    "label": "attempts",
                    "value": landed_letter["attempts"] if landed_letter else None,
                    "unit": "",
                }
            ],
            "table": {"columns": ["", "value"], "rows": rows},
            "dead_letter": letter,
            "notes": [
                (
                    f"The consumer gives up after {knobs.MAX_ATTEMPTS} attempts (knobs.MAX_ATTEMPTS); "
                    "the broker's dead-letter exchange moves it."
                )
            ],
            "ok": in_dead_queue and good_done,
        }
    finally:
        await lab.close()


@reported
async def competing_consumers(ctx: ExperimentContext, p: dict) -> dict:
    """Scale analytics to N replicas with a prefetch; measure throughput and each one's share."""
    if p["orders"] * p["work_ms"] / 1000 / p["replicas"] > knobs.MAX_LOAD_SECONDS:
        raise ParameterError(
            "orders",
            f"orders x work_ms / replicas must be at most {knobs.MAX_LOAD_SECONDS} s of work",
        )
    lab = OrderServices(ctx)
    analytics = lab.consumers["analytics"]
    try:
        await analytics.configure(prefetch=p["prefetch"], work_ms=p["work_ms"])
        if p["scale"] == "before":
            await ctx.control("scale", "analytics", replicas=p["replicas"])
        before = await analytics.stats()
        # Tracing every one of hundreds of orders would measure the tracer: sample.
        ctx.set_sample_ratio(LOAD_SAMPLE_RATIO)
        started = time.monotonic()
        pending = [new_order() for _ in range(p["orders"])]

        async def place_some() -> None:
            while pending:
                await lab.orders.place_order(pending.pop(), mode="async")

        await asyncio.gather(*(place_some() for _ in range(8)))
        published_s = time.monotonic() - started
        if p["scale"] == "after":
            # Replica 0 has had a window of `prefetch` messages pushed to it already.
            await ctx.control("scale", "analytics", replicas=p["replicas"])
        await ctx.progress(0.5, "all orders published; analytics is draining")
        done = await wait_until(
            lambda: distinct_at_least(analytics, before["distinct"] + p["orders"]),
            timeout_s=90,
            every_s=0.1,
        )
        elapsed = time.monotonic() - started
        after = await analytics.stats()
        shares = replica_shares(before["by_replica"], after["by_replica"], p["replicas"])
        handled = after["distinct"] - before["distinct"]
        summary = competing_summary(handled=handled, published_s=published_s, elapsed_s=elapsed)
        return {
            "headline": (
                f"{replicas_phrase(p['replicas'], p['scale'])} with prefetch {p['prefetch']} "
                f"handled {handled} of {p['orders']} orders at {summary[0]['value']} orders/s."
            ),
            "summary": summary,
            "charts": [
                {
                    "title": "Share of the orders per replica",
                    "type": "bar",
                    "x_label": "replica",
                    "y_label": "orders",
                    "categories": [f"replica {r}" for r in sorted(shares)],
                    "series": [{"name": "orders", "values": [shares[r] for r in sorted(shares)]}],
                }
            ],
            "table": {
                "columns": ["replica", "orders", "share %"],
                "rows": [
                    [r, n, round(100 * n / max(1, p["orders"]), 1)]
                    for r, n in sorted(shares.items())
                ],
            },
            "notes": [sampling_note(LOAD_SAMPLE_RATIO)],
            "ok": done,
        }
    finally:
        ctx.set_sample_ratio(1.0)
        await analytics.configure(prefetch=knobs.DEFAULT_PREFETCH, work_ms=None)
        await ctx.control("scale", "analytics", replicas=1)
        await lab.close()
