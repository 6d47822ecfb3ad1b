"""The broker's own poison-message guard: a quorum queue's delivery limit, beside a classic queue.

A naive consumer nacks with requeue every message it fails on. On a classic
queue the broker hands the poison message straight back, as often as the
consumer asks, until the consumer itself gives up. A quorum queue counts each
message's deliveries and, past ``x-delivery-limit``, dead-letters it (or drops
it, without a dead-letter exchange) whatever the consumer does.
"""

from __future__ import annotations

import asyncio
import json
import time

import pika
import pika.exceptions

from sandbox_services.broker.connection import connect
from sandbox_services.broker.naming import queue_arguments
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs
from .scenario import reported

POISON_ID = "poison"
# Each queue's run stops here at the latest, poison settled or not.
RUN_BUDGET_S = 10.0


def guard_queue_arguments(kind: str, dead: str, delivery_limit: int) -> dict:
    """Return the arguments of the guarded queue: both dead-letter to ``dead``."""
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
    if kind == "quorum":
        return queue_arguments(
            knobs.EXPIRES_MS,
            **{"x-queue-type": "quorum", "x-delivery-limit": delivery_limit, **dead_letter},
        )
    return queue_arguments(knobs.EXPIRES_MS, **dead_letter)


def run_naive_consumer(
    amqp_url: str, prefix: str, kind: str, *, delivery_limit: int, give_up: int, good: int
) -> dict:
    """Publish a poison message among good ones; nack it with requeue until something stops it."""
    queue, dead = knobs.guard_queue(prefix, kind), knobs.guard_queue(prefix, kind) + ".dead"
    connection = connect(amqp_url, name=f"{queue}-consumer", deadline_s=10)
    try:
        channel = connection.channel()
        for name in (queue, dead):
            channel.queue_delete(name)  # a run with another limit starts afresh
        channel.queue_declare(dead, durable=True, arguments=queue_arguments(knobs.EXPIRES_MS))
        channel.queue_declare(
            queue, durable=True, arguments=guard_queue_arguments(kind, dead, delivery_limit)
        )
        channel.confirm_delivery()
        for number in range(good + 1):
            message_id = POISON_ID if number == 0 else f"good-{number}"
            channel.basic_publish(
                "",
                queue,
                json.dumps({"id": message_id}).encode(),
                pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id
                ),
            )
        seen = {"poison": 0, "good": 0, "gave_up": False, "delivery_counts": []}

        def on_message(ch, method, properties, body: bytes) -> None:
            if properties.message_id != POISON_ID:
                seen["good"] += 1
                ch.basic_ack(method.delivery_tag)
                return
            seen["poison"] += 1
            count = (properties.headers or {}).get("x-delivery-count")
            seen["delivery_counts"].append(None if count is None else int(count))
            if kind == "classic" and seen["poison"] >= give_up:
                # The consumer's own bound, the only one a classic queue has.
                seen["gave_up"] = True
                ch.basic_reject(method.delivery_tag, requeue=False)
            else:
                # The naive handler: "try again later", with no count of its own.
                ch.basic_nack(method.delivery_tag, requeue=True)

        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(queue, on_message)
        started = time.monotonic()
        settled_s = None
        while time.monotonic() - started < RUN_BUDGET_S:
            connection.process_data_events(time_limit=0.02)
            dead_count = channel.queue_declare(dead, passive=True).method.message_count
            if dead_count and seen["good"] >= good:
                settled_s = time.monotonic() - started
                break
        elapsed = time.monotonic() - started
        channel.close()  # returns anything unacked to the queue
        letter = _peek(connection, dead)
        return {
            "kind": kind,
            "poison_deliveries": seen["poison"],
            "good_handled": seen["good"],
            "gave_up": seen["gave_up"],
            "settled_s": None if settled_s is None else round(settled_s, 3),
            "elapsed_s": round(elapsed, 3),
            "dead_reason": letter["reason"] if letter else None,
            "last_delivery_count": seen["delivery_counts"][-1] if seen["delivery_counts"] else None,
        }
    finally:
        if connection.is_open:
            connection.close()


def _peek(connection, dead: str) -> dict | None:
    """Read the dead letter's x-death reason and leave the letter in its queue."""
    channel = connection.channel()
    method, properties, _ = channel.basic_get(dead, auto_ack=False)
    if method is None:
        channel.close()
        return None
    death = ((properties.headers or {}).get("x-death") or [{}])[0]
    reason = death.get("reason")
    channel.close()  # the letter goes back
    return {"reason": reason.decode() if isinstance(reason, bytes) else reason}


@reported
async def delivery_limit(ctx: ExperimentContext, p: dict) -> dict:
    """Requeue a poison message on a quorum queue with a delivery limit and on a classic queue."""
    runs = {}
    for index, kind in enumerate(knobs.GUARD_KINDS):
        runs[kind] = await asyncio.to_thread(
            run_naive_consumer,
            ctx.amqp_url,
            ctx.prefix,
            kind,
            delivery_limit=p["delivery_limit"],
            give_up=p["give_up"],
            good=p["good"],
        )
        await ctx.progress((index + 1) / len(knobs.GUARD_KINDS), f"{kind} queue done")
    return delivery_limit_report(runs, p)


def delivery_limit_report(runs: dict[str, dict], p: dict) -> dict:
    """Turn the two queues' counts into the headline, the figures and the table."""
    quorum, classic = runs["quorum"], runs["classic"]

    def rate(run: dict) -> float | None:
        seconds = run["settled_s"] or run["elapsed_s"]
        return round(run["poison_deliveries"] / seconds, 1) if seconds else None

    rows = [
        [label, quorum[key], classic[key]]
        for label, key in (
            ("deliveries of the poison message", "poison_deliveries"),
            ("good messages handled", "good_handled"),
            ("consumer gave up", "gave_up"),
            ("dead-letter reason (x-death)", "dead_reason"),
            ("last x-delivery-count header seen", "last_delivery_count"),
            ("seconds until the poison was settled", "settled_s"),
        )
    ]
    rows.append(["poison deliveries per second", rate(quorum), rate(classic)])
    return {
        "headline": (
            f"The quorum queue (x-delivery-limit {p['delivery_limit']}) delivered the poison "
            f"message {quorum['poison_deliveries']} times, then dead-lettered it "
            f"({quorum['dead_reason']}); the classic queue delivered it "
            f"{classic['poison_deliveries']} times, until the consumer gave up at "
            f"{p['give_up']} ({classic['dead_reason']})."
        ),
        "summary": [
            {"label": "quorum deliveries", "value": quorum["poison_deliveries"], "unit": ""},
            {"label": "classic deliveries", "value": classic["poison_deliveries"], "unit": ""},
            {"label": "classic deliveries per second", "value": rate(classic), "unit": "/s"},
            {"label": "good handled (quorum)", "value": quorum["good_handled"], "unit": ""},
            {"label": "good handled (classic)", "value": classic["good_handled"], "unit": ""},
        ],
        "table": {"columns": ["", "quorum", "classic"], "rows": rows},
        "notes": [
            "The same naive consumer ran on both queues: basic.nack with requeue for the poison "
            "message, no attempt count of its own; on the classic queue it gives up at give_up "
            "deliveries, because nothing else would stop it.",
            f"Each queue's run stops after {RUN_BUDGET_S:.0f} s at most, settled or not.",
        ],
        "ok": quorum["dead_reason"] is not None
        and quorum["good_handled"] == p["good"]
        and classic["good_handled"] == p["good"],
    }
