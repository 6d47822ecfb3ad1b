"""The external side effect: dedup in the consumer's store cannot stop a second real send.

The email consumer calls an outside mail provider, then commits its dedup record.
A crash between the provider's answer and the commit leaves an email sent and no
record of it, so the redelivered message is sent again. The provider's own count
shows it; an idempotency key the provider honours ends it.
"""

from __future__ import annotations

import random

from sandbox_services.broker.probes import wait_until
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs
from .scenario import OrderServices, new_order, reported
from .services.mail_provider.client import MailProviderStats

# The two phases, in order: the provider called without a key, then with the message id as key.
PHASES = (("plain", "no key"), ("keyed", "with key"))


@reported
async def external_side_effect(ctx: ExperimentContext, p: dict) -> dict:
    """Crash email between the mail provider's answer and its commit; count at the provider."""
    lab = OrderServices(ctx)
    email = lab.consumers["email"]
    provider = MailProviderStats(ctx.address(knobs.MAIL_PROVIDER))
    previous = await email.configure()
    try:
        # Dedup on in the consumer's store throughout: the best the consumer can do alone.
        # Prefetch 1: only the crashing message is unacked when the process dies.
        await email.configure(idempotent=True, prefetch=1)

        async def prefetch_is_one() -> bool:
            return (await email.stats()).get("prefetch_applied") == 1

        await wait_until(prefetch_is_one, timeout_s=10, every_s=0.1)
        phases = []
        for index, (mode, label) in enumerate(PHASES):
            await email.configure(provider=mode)
            phases.append(await _phase(ctx, lab, provider, p, label))
            await ctx.progress((index + 1) / len(PHASES), f"phase {label} done")
        return external_side_effect_report(phases)
    finally:
        await lab.ensure_running("email")
        await email.configure(
            idempotent=previous["idempotent"], prefetch=previous["prefetch"], provider=None
        )
        await provider.close()
        await lab.close()


async def _phase(
    ctx: ExperimentContext, lab: OrderServices, provider: MailProviderStats, p: dict, label: str
) -> dict:
    """Place the orders of one phase, crash on some, and return the counts on both sides."""
    email = lab.consumers["email"]
    before, sent_before = await email.stats(), await provider.stats()
    crash_at = set(random.sample(range(p["orders"]), p["crashes"]))
    order_ids = []
    for i in range(p["orders"]):
        order = new_order(crash_in=["email"] if i in crash_at else [])
        order_ids.append(order.order_id)
        await lab.orders.place_order(order, mode="async")
    restarts = 0

    async def handled() -> bool:
        nonlocal restarts
        restarts += await lab.ensure_running("email")
        return (await email.stats())["distinct"] - before["distinct"] >= p["orders"]

    done = await wait_until(handled, timeout_s=60, every_s=0.2)
    after, sent_after = await email.stats(), await provider.stats()

    def delta(counters: str, name: str) -> int:
        return after[counters].get(name, 0) - before[counters].get(name, 0)

    return {
        "label": label,
        "done": done,
        "orders": len(order_ids),
        "crashes": delta("counters", "crashes"),
        "redelivered": delta("counters", "redelivered"),
        "restarts": restarts,
        "consumer_effects": after["effects"] - before["effects"],
        "consumer_distinct": after["distinct"] - before["distinct"],
        "provider_sends": sent_after["sends"] - sent_before["sends"],
        "provider_distinct": sent_after["distinct_messages"] - sent_before["distinct_messages"],
        "key_replays": sent_after["replayed"] - sent_before["replayed"],
    }


def external_side_effect_report(phases: list[dict]) -> dict:
    """Turn the two phases' counts into the headline, the figures and the table."""
    plain, keyed = phases
    duplicates = {phase["label"]: phase["provider_sends"] - phase["orders"] for phase in phases}
    summary = []
    for phase in phases:
        tag = f"({phase['label']})"
        summary += [
            {"label": f"crashes {tag}", "value": phase["crashes"], "unit": ""},
            {"label": f"provider sends {tag}", "value": phase["provider_sends"], "unit": ""},
            {"label": f"duplicate sends {tag}", "value": duplicates[phase["label"]], "unit": ""},
            {"label": f"consumer's effects {tag}", "value": phase["consumer_effects"], "unit": ""},
        ]
    rows = [
        [name, *(phase[key] for phase in phases)]
        for name, key in (
            ("orders placed", "orders"),
            ("crashes after the send, before the commit", "crashes"),
            ("redeliveries seen by email", "redelivered"),
            ("email rows in the consumer's store", "consumer_effects"),
            ("emails the provider sent", "provider_sends"),
            ("orders the provider sent to", "provider_distinct"),
            ("requests answered from the key", "key_replays"),
        )
    ]
    rows.append(["duplicate emails at the provider", *duplicates.values()])
    return {
        "headline": (
            f"With dedup in its own store, email's {plain['crashes']} crashes between the "
            f"provider's answer and its commit left {plain['consumer_effects']} rows for "
            f"{plain['orders']} orders, but the provider sent {plain['provider_sends']} emails "
            f"({duplicates['no key']} duplicates); with the message id as idempotency key, "
            f"{keyed['crashes']} crashes gave {keyed['provider_sends']} emails for "
            f"{keyed['orders']} orders ({duplicates['with key']} duplicates)."
        ),
        "summary": summary,
        "table": {"columns": ["", "no key", "with key"], "rows": rows},
        "notes": [
            "Counts come from two stores that never share a transaction: the consumer's "
            "SQLite file and the mail provider's.",
            "The consumer checked its dedup record before calling the provider, and found "
            "nothing for a crashed order: the crash came before the record's commit.",
        ],
        "ok": all(phase["done"] for phase in phases)
        and duplicates["no key"] == plain["crashes"]
        and duplicates["with key"] == 0,
    }
