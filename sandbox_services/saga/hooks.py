"""The lesson's teardown and metrics hooks (LabSpec.teardown, LabSpec.metrics)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pika
import pika.exceptions

from sandbox_services.saga.topology import all_queue_names, exchange_name

from . import invariants
from .stores import read_only


def delete_broker_objects(amqp_url: str, prefix: str) -> list[str]:
    """Delete the lesson's queues and exchange; return what was deleted."""
    deleted = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for queue in all_queue_names(prefix):
            channel = connection.channel()
            try:
                channel.queue_delete(queue)
                deleted.append(queue)
            except pika.exceptions.ChannelClosedByBroker:
                pass  # never declared, or already expired
        channel = connection.channel()
        try:
            channel.exchange_delete(exchange_name(prefix))
            deleted.append(exchange_name(prefix))
        except pika.exceptions.ChannelClosedByBroker:
            pass
    finally:
        connection.close()
    return deleted


async def teardown(ctx) -> None:
    """Delete the sandbox's broker objects when it stops."""
    await asyncio.to_thread(delete_broker_objects, ctx.amqp_url, ctx.prefix)


def saga_counts(workdir: Path) -> dict:
    """Return saga counts by order status, and the coordinator's open sagas by state."""
    counts = {"pending": 0, "approved": 0, "rejected": 0}
    with read_only(Path(workdir), "orders") as conn:
        if conn is not None:
            for status, count in conn.execute(
                "SELECT status, COUNT(*) FROM orders GROUP BY status"
            ):
                counts[status] = count
    open_states: dict[str, int] = {}
    with read_only(Path(workdir), "coordinator") as conn:
        if conn is not None:
            # The state machine lit live: how many open sagas sit in each state.
            for state, count in conn.execute(
                "SELECT state, COUNT(*) FROM sagas WHERE phase != 'finished' GROUP BY state"
            ):
                open_states[state] = count
    return {
        "sagas_running": counts["pending"],
        "sagas_approved": counts["approved"],
        "sagas_rejected": counts["rejected"],
        "coordinator_sagas_open": sum(open_states.values()),
        "coordinator_states": open_states,
    }


async def metrics(ctx) -> dict:
    """Report saga counts every second; a saga still running at stop shows here as running."""
    return await asyncio.to_thread(saga_counts, ctx.workdir)


__all__ = ["delete_broker_objects", "invariants", "metrics", "teardown"]
