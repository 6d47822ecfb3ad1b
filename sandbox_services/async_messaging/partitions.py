"""Kafka's model built on RabbitMQ 3.10: keyed partitions and a consumer group.

RabbitMQ 3.11 added super streams (partitioned streams with single active
consumers); this broker is 3.10, so the partitioning is built here from parts
3.10 has: the producer hashes each key to one of N partitions as Kafka's default
partitioner does, a direct exchange routes it to that partition's queue, and
each queue is declared ``x-single-active-consumer``, so of the group's members
subscribed to it, the broker delivers to one at a time.

The group's members run as threads of this run, each with its own connection.
"""

from __future__ import annotations

import asyncio
import json
import queue as queues
import threading
import time
from collections.abc import Callable

import pika

from sandbox_services.broker.connection import connect
from sandbox_services.broker.naming import queue_arguments
from sandbox_services.broker.probes import wait_until
from sandbox_services.runtime.spec import ExperimentContext

from . import knobs
from .scenario import reported


def murmur2(data: bytes) -> int:
    """Return Kafka's murmur2 hash of ``data`` as a signed 32-bit int (Kafka's Utils.murmur2)."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = len(data) - whole
    if extra == 3:
        h ^= data[whole + 2] << 16
    if extra >= 2:
        h ^= data[whole + 1] << 8
    if extra >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(key: str, partitions: int) -> int:
    """Return the partition of a key as Kafka's default partitioner does for a keyed record."""
    # toPositive(murmur2(key bytes)) % numPartitions: the sign bit cleared, not abs().
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class GroupMember:
    """One member of the consumer group: its own connection, on its own thread."""

    def __init__(self, amqp_url: str, name: str, work_ms: float, record: Callable) -> None:
        self.name = name
        self._url = amqp_url
        self._work_s = work_ms / 1000
        self._record = record
        self._requests: queues.Queue = queues.Queue()
        self._thread = threading.Thread(target=self._run, name=f"group-{name}", daemon=True)
        self._thread.start()

    def subscribe(self, names: list[str]) -> None:
        """Subscribe to these partition queues, in this order; return once the broker agreed."""
        self._ask("subscribe", names)

    def leave(self) -> None:
        """Close the member's connection: the broker hands its partitions to the next in line."""
        if not self._thread.is_alive():
            return  # left already
        self._ask("leave", [])
        self._thread.join(10)

    def _ask(self, action: str, names: list[str]) -> None:
        done = threading.Event()
        self._requests.put((action, names, done))
        if not done.wait(15):
            raise TimeoutError(f"{self.name} did not {action} within 15 s")

    def _run(self) -> None:
        connection = connect(self._url, name=f"group-{self.name}", deadline_s=10)
        channel = connection.channel()
        # One unacked message per partition: a handover requeues at most that one.
        channel.basic_qos(prefetch_count=1)
        try:
            while True:
                connection.process_data_events(time_limit=0.02)
                try:
                    action, names, done = self._requests.get_nowait()
                except queues.Empty:
                    continue
                if action == "leave":
                    connection.close()
                    done.set()
                    return
                for name in names:
                    channel.basic_consume(name, self._on_message)
                done.set()
        finally:
            if connection.is_open:
                connection.close()

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        message = json.loads(body)
        if self._work_s:
            time.sleep(self._work_s)
        self._record(self.name, message)
        channel.basic_ack(method.delivery_tag)


class PartitionedTopic:
    """The producer's side: N partition queues behind a direct exchange, and the partitioner."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self._prefix = prefix
        self._exchange = prefix + knobs.PARTITION_EXCHANGE
        # Used now and then from the event loop's threads, never driven in between: without
        # heartbeats, or the broker drops it as an idle publisher (docs/architecture.md).
        self._connection = connect(
            amqp_url, name=f"{prefix}partitioner", deadline_s=10, heartbeat=0
        )
        self._channel = self._connection.channel()
        self.partitions = 0

    def queue(self, partition: int) -> str:
        return self._prefix + knobs.PARTITION_QUEUE.format(partition)

    def reset(self) -> None:
        """Delete every partition queue of earlier runs, so each run starts empty."""
        for name in knobs.partition_queues(self._prefix):
            self._channel.queue_delete(name)

    def grow(self, partitions: int) -> None:
        """Declare partitions up to ``partitions``, each with a single active consumer."""
        self._channel.exchange_declare(self._exchange, "direct", durable=True, auto_delete=True)
        arguments = queue_arguments(knobs.EXPIRES_MS, **{"x-single-active-consumer": True})
        for partition in range(self.partitions, partitions):
            name = self.queue(partition)
            self._channel.queue_declare(name, durable=True, arguments=arguments)
            self._channel.queue_bind(name, self._exchange, str(partition))
        self.partitions = partitions

    def publish_round(self, keys: list[str], per_key: int, first_seq: int) -> int:
        """Publish ``per_key`` messages for every key, interleaved; return the messages sent."""
        sent = 0
        for seq in range(first_seq, first_seq + per_key):
            for key in keys:
                partition = partition_of(key, self.partitions)
                body = {"key": key, "seq": seq, "partition": partition}
                # No confirms: the backlog must build faster than the group drains it.
                # Loss would show as fewer messages handled than published.
                self._channel.basic_publish(
                    self._exchange,
                    str(partition),
                    json.dumps(body).encode(),
                    pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
                )
                sent += 1
        return sent

    def close(self) -> None:
        if self._connection.is_open:
            self._connection.close()


class HandlingLog:
    """Every message handled, in the order the group handled it (members append under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, int, str, int]] = []  # member, partition, key, seq

    def record(self, member: str, message: dict) -> None:
        with self._lock:
            self.entries.append((member, message["partition"], message["key"], message["seq"]))

    def count(self) -> int:
        with self._lock:
            return len(self.entries)

    def since(self, start: int) -> list[tuple[str, int, str, int]]:
        with self._lock:
            return list(self.entries[start:])


def phase_figures(entries: list[tuple[str, int, str, int]], published: int) -> dict:
    """Return who handled each partition, and which keys saw a message after a later one."""
    members_of: dict[int, set[str]] = {}
    last_seq: dict[str, int] = {}
    out_of_order: set[str] = set()
    for member, partition, key, seq in entries:
        members_of.setdefault(partition, set()).add(member)
        if seq <= last_seq.get(key, -1):
            out_of_order.add(key)
        last_seq[key] = max(seq, last_seq.get(key, -1))
    handled_by: dict[str, int] = {}
    for member, *_ in entries:
        handled_by[member] = handled_by.get(member, 0) + 1
    return {
        "published": published,
        "handled": len(entries),
        "members_of": {p: sorted(names) for p, names in sorted(members_of.items())},
        "handled_by": handled_by,
        "out_of_order": sorted(out_of_order),
    }


@reported
async def partitions(ctx: ExperimentContext, p: dict) -> dict:
    """Hash keys to partitions, run a group with one active member per partition, then change N."""
    log = HandlingLog()
    keys = [f"customer-{n}" for n in range(p["keys"])]
    topic = await asyncio.to_thread(PartitionedTopic, ctx.amqp_url, ctx.prefix)
    first, second, joiner = knobs.GROUP_MEMBERS
    members: dict[str, GroupMember] = {}
    # Tracing every message of three rounds would measure the tracer: sample.
    ctx.set_sample_ratio(0.05)
    try:
        await asyncio.to_thread(topic.reset)
        await asyncio.to_thread(topic.grow, p["partitions"])
        for name in (first, second, joiner):
            members[name] = GroupMember(ctx.amqp_url, name, p["work_ms"], log.record)
        # The first member to subscribe to a queue is its active consumer. Kafka's group
        # coordinator spreads partitions; here the order of subscription does it.
        own = {
            first: [n for n in range(p["partitions"]) if n % 2 == 0],
            second: [n for n in range(p["partitions"]) if n % 2 == 1],
        }
        for name in (first, second):
            await asyncio.to_thread(members[name].subscribe, [topic.queue(n) for n in own[name]])
        for name, other in ((first, second), (second, first)):
            await asyncio.to_thread(members[name].subscribe, [topic.queue(n) for n in own[other]])
        # The third member joins the group: it subscribes to every partition.
        all_queues = [topic.queue(n) for n in range(p["partitions"])]
        await asyncio.to_thread(members[joiner].subscribe, all_queues)
        phases = {}
        seq = 0

        async def run_round(label: str) -> None:
            nonlocal seq
            start = log.count()
            sent = await asyncio.to_thread(topic.publish_round, keys, p["per_key"], seq)
            seq += p["per_key"]
            await wait_until(lambda: _handled(log, start + sent), timeout_s=30, every_s=0.05)
            phases[label] = phase_figures(log.since(start), sent)
            await ctx.progress(len(phases) / 3, f"{label} done")

        await run_round("steady")
        # A member leaves: the broker makes the next subscriber of each of its queues active.
        await asyncio.to_thread(members[first].leave)
        await run_round("after a leave")
        # The partition count changes while the old partitions still hold a backlog: the
        # round before the change is published, then at once the round after it.
        before = p["partitions"]
        start = log.count()
        sent = await asyncio.to_thread(topic.publish_round, keys, p["per_key"], seq)
        seq += p["per_key"]
        await asyncio.to_thread(topic.grow, before + 1)
        # The idle member takes the new partition first, as a rebalance would give it to someone.
        await asyncio.to_thread(members[joiner].subscribe, [topic.queue(before)])
        await asyncio.to_thread(members[second].subscribe, [topic.queue(before)])
        sent += await asyncio.to_thread(topic.publish_round, keys, p["per_key"], seq)
        await wait_until(lambda: _handled(log, start + sent), timeout_s=30, every_s=0.05)
        phases["partitions changed"] = phase_figures(log.since(start), sent)
        moved = [key for key in keys if partition_of(key, before) != partition_of(key, before + 1)]
        return partitions_report(phases, p, moved=len(moved), members=(first, second, joiner))
    finally:
        ctx.set_sample_ratio(1.0)
        for member in members.values():
            try:
                await asyncio.to_thread(member.leave)
            except TimeoutError:
                pass
        await asyncio.to_thread(topic.close)


async def _handled(log: HandlingLog, expected: int) -> bool:
    return log.count() >= expected


def partitions_report(
    phases: dict[str, dict], p: dict, *, moved: int, members: tuple[str, str, str]
) -> dict:
    """Turn the three phases into the headline, the figures and the per-partition table."""
    first, _, joiner = members
    steady, leave, changed = (phases[k] for k in ("steady", "after a leave", "partitions changed"))
    moved_on_leave = [
        partition
        for partition, names in leave["members_of"].items()
        if names != steady["members_of"].get(partition)
    ]
    rows = []
    for label, figures in phases.items():
        for partition, names in figures["members_of"].items():
            rows.append([label, partition, ", ".join(names)])
    summary = [
        {"label": "keys out of order (steady)", "value": len(steady["out_of_order"]), "unit": ""},
        {
            "label": f"messages handled by {joiner} before the leave",
            "value": steady["handled_by"].get(joiner, 0),
            "unit": "",
        },
        {"label": "partitions moved on the leave", "value": len(moved_on_leave), "unit": ""},
        {"label": "keys out of order (leave)", "value": len(leave["out_of_order"]), "unit": ""},
        {"label": "keys moved to another partition", "value": moved, "unit": ""},
        {
            "label": "keys out of order (repartition)",
            "value": len(changed["out_of_order"]),
            "unit": "",
        },
    ]
    lost = sum(phase["published"] - phase["handled"] for phase in phases.values())
    return {
        "headline": (
            f"{p['keys']} keys over {p['partitions']} partitions: {len(steady['out_of_order'])} "
            f"keys out of order with a stable group and {len(leave['out_of_order'])} after "
            f"{first} left ({len(moved_on_leave)} partitions moved to the next member in line); "
            f"going to {p['partitions'] + 1} partitions moved {moved} keys and put "
            f"{len(changed['out_of_order'])} out of order."
        ),
        "summary": summary,
        "table": {"columns": ["phase", "partition", "member(s) that handled it"], "rows": rows},
        "notes": [
            f"{joiner} joined before the first round and handled "
            f"{steady['handled_by'].get(joiner, 0)} messages in it: a single active consumer "
            "queue gives a newcomer nothing until the active member leaves. Kafka's group "
            "coordinator would rebalance on the join.",
            "Partitions come from murmur2 of the key, sign bit cleared, modulo the partition "
            "count: Kafka's default partitioner for keyed records, ported here.",
            f"Messages published and not handled: {lost}.",
            "Traces were sampled at 5% during the rounds.",
        ],
        "ok": lost == 0 and not steady["out_of_order"] and not leave["out_of_order"],
    }
