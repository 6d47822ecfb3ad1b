"""Backpressure: a queue length limit, and what the producer sees when the queue is full.

Two queues with the same ``x-max-length`` and no consumer take the same publishes
with publisher confirms on. ``x-overflow: reject-publish`` refuses the newest
messages, and the producer gets a basic.nack for each; ``drop-head`` (the
default) discards the oldest to make room, and the producer gets an ack for
every message, so the loss is silent. The run counts the acks and nacks the
producer received and reads back which messages each queue kept.
"""

from __future__ import annotations

import asyncio
import json

import pika
import pika.exceptions

from sandbox_services.broker.connection import connect
from sandbox_services.broker.naming import queue_arguments
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs
from .scenario import reported


def fill_bounded_queue(
    amqp_url: str, queue: str, *, overflow: str, max_length: int, messages: int
) -> dict:
    """Publish ``messages`` numbered messages to a fresh bounded queue; return what happened."""
    connection = connect(amqp_url, name=f"{queue}-producer", deadline_s=10)
    try:
        channel = connection.channel()
        # A queue's arguments are fixed when declared: a run with a new limit starts afresh.
        channel.queue_delete(queue)
        arguments = queue_arguments(
            knobs.EXPIRES_MS, **{"x-max-length": max_length, "x-overflow": overflow}
        )
        channel.queue_declare(queue, durable=True, arguments=arguments)
        channel.confirm_delivery()
        acked, nacked = [], []
        for number in range(messages):
            properties = pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent, message_id=str(number)
            )
            try:
                # In confirm mode a blocking publish returns on the broker's ack and
                # raises NackError on its nack: what the producer sees, message by message.
                channel.basic_publish("", queue, json.dumps(number).encode(), properties)
                acked.append(number)
            except pika.exceptions.NackError:
                nacked.append(number)
        depth = channel.queue_declare(queue, passive=True).method.message_count
        kept = _read_without_removing(channel, queue)
        return {"acked": acked, "nacked": nacked, "depth": depth, "kept": kept}
    finally:
        if connection.is_open:
            connection.close()


def _read_without_removing(channel, queue: str) -> list[int]:
    """Return the numbers of the messages in the queue, oldest first, leaving them there."""
    kept = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        kept.append(json.loads(body))
    # Closing the channel returns every unacked message to the queue, in its place.
    channel.close()
    return kept


@reported
async def queue_length_limit(ctx: ExperimentContext, p: dict) -> dict:
    """Publish past a queue's length limit with reject-publish and drop-head; count both sides."""
    outcomes = {}
    for index, overflow in enumerate(knobs.OVERFLOW_MODES):
        outcomes[overflow] = await asyncio.to_thread(
            fill_bounded_queue,
            ctx.amqp_url,
            knobs.bounded_queue(ctx.prefix, overflow),
            overflow=overflow,
            max_length=p["max_length"],
            messages=p["messages"],
        )
        await ctx.progress((index + 1) / len(knobs.OVERFLOW_MODES), f"{overflow} filled")
    return queue_length_limit_report(outcomes, p["max_length"])


def queue_length_limit_report(outcomes: dict[str, dict], max_length: int) -> dict:
    """Turn each queue's counts into the headline, the figures, a chart and the table."""
    figures = {}
    for overflow, seen in outcomes.items():
        kept = seen["kept"]
        figures[overflow] = {
            "published": len(seen["acked"]) + len(seen["nacked"]),
            "acks": len(seen["acked"]),
            "nacks": len(seen["nacked"]),
            "in the queue": seen["depth"],
            # Confirmed to the producer and yet not in the queue: lost without a word.
            "lost after the ack": len(set(seen["acked"]) - set(kept)),
            "oldest kept": kept[0] if kept else None,
            "newest kept": kept[-1] if kept else None,
        }
    reject, drop = figures["reject-publish"], figures["drop-head"]
    names = list(reject)
    return {
        "headline": (
            f"Queue limited to {max_length}: with reject-publish the producer got "
            f"{reject['nacks']} nacks and the queue kept messages {reject['oldest kept']} to "
            f"{reject['newest kept']}; with drop-head it got {drop['nacks']} nacks and "
            f"{drop['acks']} acks, while the queue kept {drop['oldest kept']} to "
            f"{drop['newest kept']}: {drop['lost after the ack']} confirmed messages were dropped."
        ),
        "summary": [
            {"label": f"{overflow} {name}", "value": value, "unit": ""}
            for overflow, values in figures.items()
            for name, value in values.items()
            if name in ("acks", "nacks", "in the queue", "lost after the ack")
        ],
        "charts": [
            {
                "title": "What the producer was told, and what the queue kept",
                "type": "bar",
                "x_label": "overflow",
                "y_label": "messages",
                "categories": list(figures),
                "series": [
                    {"name": name, "values": [figures[o][name] for o in figures]}
                    for name in ("acks", "nacks", "in the queue", "lost after the ack")
                ],
            }
        ],
        "table": {
            "columns": ["", *figures],
            "rows": [[name, *(figures[o][name] for o in figures)] for name in names],
        },
        "notes": [
            "Messages are numbered from 0 in publishing order; 'oldest kept' and 'newest kept' "
            "are read back from each queue with basic.get and returned to it.",
            "No consumer ran, so the queues stayed full; each expires with the sandbox.",
        ],
        "ok": reject["in the queue"]
        == drop["in the queue"]
        == min(max_length, reject["published"]),
    }
