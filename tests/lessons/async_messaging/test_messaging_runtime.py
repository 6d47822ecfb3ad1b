"""The two messaging lessons under the real runtime: host, supervisor, forked services and runners.

One host serves two sandboxes, one per lesson (async-messaging and
event-sourcing), from tests/sandboxes.py. Every experiment runs as the platform runs it
(``client.command("run")``) with small parameters; spans come from the
replay set, metrics from the channel layer, and after the stop the broker
is asked, passively, for each of the sandbox's queues, exchanges and streams.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable

import pytest
import redis
from channels_redis.core import RedisChannelLayer

from sandbox_services.event_sourcing.services.accounts.client import AccountsClient
from sandbox_services.event_sourcing.domain import Command, DomainError
from sandbox_services.async_messaging import LAB as MESSAGING_LAB
from sandbox_services.async_messaging import knobs as messaging_config
from sandbox_services.event_sourcing import knobs as sourcing_config
from sandbox_services.runtime.keys import amqp_counts as counts_key
from sandbox_services.runtime.keys import amqp_last_sample as last_sample_key
from sandbox_services.runtime.keys import DECLARED_STREAMS as STREAMS_KEY
from sandbox_services.async_messaging.services.consumers.client import ConsumerClient
from sandbox_services.async_messaging.services.orders.client import OrdersHttpClient
from sandbox_services.async_messaging.services.orders.interface import Order
from sandbox_services.runtime import client, keys
from tests.sandboxes import Sandbox, wait_until
from tests.broker import broker_has

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
GAUGE_FIELDS = {"depth", "unacked", "consumers", "publish_rate", "deliver_rate"}
pytestmark = pytest.mark.timeout(240)


async def _first_lab_metrics(sandbox_id: str, wanted, timeout_s: float = 10) -> dict:
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
    channel = await layer.new_channel()
    await layer.group_add(keys.channel_group(sandbox_id), channel)
    await asyncio.to_thread(client.watch, sandbox_id, channel, 30)  # gauges run while watched
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await layer.receive(channel)
                if (
                    message["type"] == "sandbox.metrics"
                    and message["source"] == "lab"
                    and wanted(message["metrics"])
                ):
                    return message["metrics"]
    finally:
        await layer.group_discard(keys.channel_group(sandbox_id), channel)


def first_lab_metrics(sandbox_id: str, wanted=lambda metrics: True) -> dict:
    """Return the first metrics of the lab's metrics hook that reach the sandbox's group.

    A new watcher gets the newest sample first, which may predate what the test
    did a moment ago; ``wanted`` skips samples until one shows it.
    """
    return asyncio.run(_first_lab_metrics(sandbox_id, wanted))


def stop_and_wait(sandbox: Sandbox) -> dict:
    reply = sandbox.stop()
    assert reply is not None and reply["state"] == "stopped", reply
    return reply


@pytest.fixture(scope="module")
def messaging(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("async-messaging")


@pytest.fixture(scope="module")
def sourcing(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("event-sourcing")


def new_order(**fields: object) -> Order:
    return Order(uuid.uuid4().hex, "learner@example.com", 1234, **fields)


async def _place(address: str, order: Order) -> None:
    orders = OrdersHttpClient(address)
    try:
        await orders.place_order(order, mode="async")
    finally:
        await orders.close()


async def _timed(call: Callable[[ConsumerClient], object], address: str) -> float:
    consumer = ConsumerClient(address)
    try:
        started = time.monotonic()
        await call(consumer)
        return time.monotonic() - started
    finally:
        await consumer.close()


# --- async messaging -------------------------------------------------------------------


def test_async_messaging_spawns_every_service_running(messaging: Sandbox) -> None:
    declared = {spec.name for spec in MESSAGING_LAB.services}
    assert {"orders", *messaging_config.CONSUMERS} <= declared
    assert set(messaging.services) == declared
    assert all(entry["state"] == "running" for entry in messaging.services.values())


def test_sync_vs_async_fails_the_sync_order_and_traces_one_publish_to_every_consumer(
    messaging: Sandbox,
) -> None:
    since = messaging.last_seq()
    result = messaging.run("sync-vs-async", {"orders": 3, "email_fault": "stop"})
    assert result["ok"], result
    [sync_row, async_row] = result["table"]["rows"]
    assert sync_row[3] != "accepted" and async_row[3] == "accepted"

    def traced_publish() -> tuple[dict, list[dict]] | None:
        spans = messaging.spans(since)
        for producer in spans:
            if producer["service"] != "orders" or producer["kind"] != "producer":
                continue
            received = [
                span
                for span in spans
                if span["kind"] == "consumer" and span["parent_id"] == producer["span_id"]
            ]
            if {span["service"] for span in received} == set(messaging_config.CONSUMERS):
                return producer, received
        return None

    producer, received = wait_until(traced_publish, 10)
    assert {span["trace_id"] for span in received} == {producer["trace_id"]}
    assert len(received) == len(messaging_config.CONSUMERS)  # one receive span per consumer

    def published() -> list[str]:
        return [
            span["attributes"].get("messaging.message.id")
            for span in messaging.spans(since)
            if span["service"] == "orders" and span["kind"] == "producer"
        ]

    # One producer span per publish: pika's nested duplicate is collapsed by the runtime.
    # They land a batch at a time: wait for all four, then give a duplicate time to show.
    wait_until(lambda: len(published()) >= 4, 10)
    time.sleep(0.5)
    amqp = [span for span in messaging.spans(since) if span["protocol"] == "amqp"]
    assert amqp and all(span["peer"] == "rabbitmq" for span in amqp)
    ids = published()
    assert len(ids) == len(set(ids)) == 4  # 3 healthy + 1 with email stopped


def test_temporal_decoupling_lets_every_consumer_see_every_order(messaging: Sandbox) -> None:
    result = messaging.run(
        "temporal-decoupling", {"orders": 10, "rate": 50, "consumer": "email", "fault": "stop"}
    )
    assert result["ok"], result
    assert {name: seen for name, seen, _ in result["table"]["rows"]} == dict.fromkeys(
        messaging_config.CONSUMERS, 15
    )
    assert messaging.control("clear", "email")["email"]["state"] == "running"


def test_at_least_once_with_idempotency_counts_each_effect_once_through_crashes(
    messaging: Sandbox,
) -> None:
    result = messaging.run(
        "at-least-once", {"orders": 6, "crashes": 2, "idempotent": True, "consumer": "audit"}
    )
    summary = {item["label"]: item["value"] for item in result["summary"]}
    assert result["ok"], result
    assert summary["crashes"] == 2 and summary["effects"] == 6 and summary["duplicates"] == 0
    status = messaging.status()
    assert status["state"] == "running"
    assert status["services"]["audit"]["state"] == "running"


def test_poison_message_lands_in_the_dead_letter_queue(messaging: Sandbox) -> None:
    result = messaging.run("poison-messages", {"good_orders": 2, "send_back": True})
    assert result["ok"], result
    assert result["dead_letter"]["attempts"] == messaging_config.MAX_ATTEMPTS
    assert result["dead_letter"]["reason"] == "rejected"


def test_competing_consumers_share_the_queue_between_replicas(messaging: Sandbox) -> None:
    result = messaging.run(
        "competing-consumers",
        {"orders": 60, "replicas": 3, "prefetch": 1, "work_ms": 10.0, "scale": "before"},
    )
    assert result["ok"], result
    shares = {replica: count for replica, count, _ in result["table"]["rows"]}
    # Replicas write to one store in the shared workdir: its counts add up across them.
    assert sum(shares.values()) == 60
    assert sum(1 for count in shares.values() if count > 0) >= 2, shares
    assert messaging.status()["services"]["analytics"]["replicas"] == 1


def test_scaled_replicas_listen_on_ports_of_their_own(messaging: Sandbox) -> None:
    state = messaging.control("scale", "analytics", replicas=2)["analytics"]
    try:
        ports = [instance["port"] for instance in state["instances"][:2]]
        assert state["state"] == "running" and len(set(ports)) == 2
        assert all(instance["state"] == "running" for instance in state["instances"][:2])
    finally:
        messaging.control("scale", "analytics", replicas=1)


def test_start_of_a_running_service_changes_nothing(messaging: Sandbox) -> None:
    before = messaging.status()["services"]["orders"]
    after = messaging.control("start", "orders")["orders"]
    assert after["state"] == "running" and after["pid"] == before["pid"]


def test_a_consumer_that_crashes_with_status_70_shows_crashed_and_starts_again(
    messaging: Sandbox,
) -> None:
    asyncio.run(_place(messaging.address("orders"), new_order(crash_in=["email"])))
    crashed = wait_until(
        lambda: (entry := messaging.status()["services"]["email"])["state"] == "crashed" and entry,
        10,
    )
    assert crashed["exit_code"] == 70
    assert messaging.status()["state"] == "running"
    assert messaging.control("start", "email")["email"]["state"] == "running"


def test_injected_delay_is_applied_once_on_the_http_path(messaging: Sandbox) -> None:
    messaging.control("delay", "audit", delay_ms=300)
    try:
        address = messaging.address("audit")
        handled_s = asyncio.run(
            _timed(lambda c: c.handle(new_order().as_dict(), message_id=uuid.uuid4().hex), address)
        )
        stats_s = asyncio.run(_timed(lambda c: c.stats(), address))
    finally:
        messaging.control("clear", "audit")
    assert 0.3 <= handled_s < 0.55  # the service's own delay, not doubled by the runtime
    assert stats_s < 0.25


def test_injected_delay_slows_the_order_service_once(messaging: Sandbox) -> None:
    messaging.control("delay", "orders", delay_ms=300)
    try:
        started = time.monotonic()
        asyncio.run(_place(messaging.address("orders"), new_order()))
        elapsed_s = time.monotonic() - started
    finally:
        messaging.control("clear", "orders")
    assert 0.3 <= elapsed_s < 0.55


def test_async_messaging_metrics_carry_every_queue_in_the_documented_shape(
    messaging: Sandbox,
) -> None:
    # Tests before stopped and restarted consumers: the newest sample may predate that.
    metrics = first_lab_metrics(
        messaging.id, wanted=lambda metrics: metrics["queues"]["email"]["consumers"] >= 1
    )
    queues = metrics["queues"]
    assert set(queues) == set(messaging_config.queue_names())
    assert all(set(gauge) == GAUGE_FIELDS for gauge in queues.values())
    for gauge in queues.values():
        assert isinstance(gauge["depth"], int) and isinstance(gauge["publish_rate"], float)
    assert queues["email"]["consumers"] >= 1


def test_async_messaging_stop_leaves_nothing_in_rabbitmq_or_redis(messaging: Sandbox) -> None:
    prefix = f"lab.{messaging.id}."
    assert broker_has(prefix + "email", "queue")
    stop_and_wait(messaging)
    for queue in messaging_config.queue_names():
        assert not broker_has(prefix + queue, "queue"), queue
    assert not broker_has(prefix + messaging_config.EXCHANGE, "exchange")
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert not connection.exists(counts_key(messaging.id), last_sample_key(messaging.id))
    assert not list(connection.scan_iter(match=f"lab:amqp:{messaging.id}:*"))


# --- event sourcing --------------------------------------------------------------------


def test_replay_rebuilds_an_equal_view(sourcing: Sandbox) -> None:
    result = sourcing.run("replay", {"events": 60, "view": "balances"})
    summary = {item["label"]: item["value"] for item in result["summary"]}
    assert result["ok"], result
    assert summary["identical"] is True and summary["events replayed"] >= 60


def test_state_as_of_matches_every_rebuilt_version(sourcing: Sandbox) -> None:
    result = sourcing.run("state-as-of", {"history": 10, "points": 3})
    assert result["ok"], result
    assert all(row[3] == "yes" for row in result["table"]["rows"])


def test_late_projection_catches_up_with_the_log(sourcing: Sandbox) -> None:
    result = sourcing.run("late-projection", {"events": 100, "kind": "activity"})
    assert result["ok"], result


def test_log_keeps_what_a_queue_forgets(sourcing: Sandbox) -> None:
    result = sourcing.run("log-vs-queue", {"events": 20})
    rows = {row[0]: row[1:] for row in result["table"]["rows"]}
    assert result["ok"], result
    assert rows["left after reading"][0] == 0 and rows["second read"][1] == 20


def test_optimistic_concurrency_refuses_all_but_one(sourcing: Sandbox) -> None:
    result = sourcing.run("optimistic-concurrency", {"contenders": 3})
    summary = {item["label"]: item["value"] for item in result["summary"]}
    assert result["ok"], result
    assert summary["appended"] == 1 and summary["refused"] == 2


def test_appends_are_amqp_spans_to_rabbitmq(sourcing: Sandbox) -> None:
    since = sourcing.last_seq()
    sourcing.run("optimistic-concurrency", {"contenders": 2})

    def producer_spans_by_account() -> dict[str, list[dict]]:
        # Message ids are "<account>:<version>": the run's own account, not the
        # previous test's, whose last spans may still be landing.
        accounts: dict[str, list[dict]] = {}
        for span in sourcing.spans(since):
            if span["service"] == "accounts" and span["kind"] == "producer":
                account = str(span["attributes"].get("messaging.message.id", "")).split(":")[0]
                accounts.setdefault(account, []).append(span)
        return accounts

    # open, deposit and the one contender that won: one span each, no nested duplicates.
    # The spans land one batch at a time: wait for all three, then for any straggler.
    wait_until(lambda: any(len(s) >= 3 for s in producer_spans_by_account().values()), 10)
    time.sleep(0.5)
    spans = max(producer_spans_by_account().values(), key=lambda s: max(span["seq"] for span in s))
    assert all(span["protocol"] == "amqp" and span["peer"] == "rabbitmq" for span in spans)
    assert len(spans) == 3, [span["attributes"].get("messaging.message.id") for span in spans]


def test_injected_errors_refuse_commands_with_the_reason(sourcing: Sandbox) -> None:
    async def open_account() -> None:
        accounts = AccountsClient(sourcing.address("accounts"))
        try:
            await accounts.execute(Command(f"acct-{uuid.uuid4().hex[:8]}", "open"))
        finally:
            await accounts.close()

    sourcing.control("error", "accounts", error_rate=1.0)
    try:
        with pytest.raises(DomainError, match="fault injected"):
            asyncio.run(open_account())
    finally:
        sourcing.control("clear", "accounts")
    asyncio.run(open_account())


def test_a_restarted_account_service_rebuilds_its_state_from_the_log(sourcing: Sandbox) -> None:
    account_id = f"acct-{uuid.uuid4().hex[:8]}"

    async def write_then_read() -> object:
        accounts = AccountsClient(sourcing.address("accounts"))
        try:
            await accounts.execute(Command(account_id, "open"))
            await accounts.execute(Command(account_id, "deposit", 70))
            await accounts.execute(Command(account_id, "withdraw", 20))
            return await accounts.account(account_id)
        finally:
            await accounts.close()

    async def read() -> object:
        accounts = AccountsClient(sourcing.address("accounts"))
        try:
            return await accounts.account(account_id)
        finally:
            await accounts.close()

    before = asyncio.run(write_then_read())
    assert sourcing.control("restart", "accounts")["accounts"]["state"] == "running"
    # The new process knows nothing but the log: the same state means it replayed it.
    assert asyncio.run(read()) == before


def test_event_sourcing_metrics_carry_the_log_and_each_views_lag(sourcing: Sandbox) -> None:
    # The test before restarted the accounts: the newest sample may show no views yet.
    metrics = first_lab_metrics(sourcing.id, wanted=lambda metrics: metrics.get("views"))
    queues = metrics["queues"]
    assert set(queues) == {sourcing_config.STREAM, sourcing_config.COMPARE_QUEUE}
    assert all(set(gauge) == GAUGE_FIELDS for gauge in queues.values())
    assert queues[sourcing_config.STREAM]["depth"] > 0
    assert "balances" in metrics["views"]


def test_event_sourcing_stop_leaves_no_stream_queue_or_exchange(sourcing: Sandbox) -> None:
    prefix = f"lab.{sourcing.id}."
    stream = prefix + sourcing_config.STREAM
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert broker_has(stream, "queue") and connection.sismember(STREAMS_KEY, stream)
    stop_and_wait(sourcing)
    assert not broker_has(stream, "queue")
    assert not broker_has(prefix + sourcing_config.COMPARE_QUEUE, "queue")
    assert not broker_has(prefix + sourcing_config.EXCHANGE, "exchange")
    assert not connection.sismember(STREAMS_KEY, stream)
    assert not list(connection.scan_iter(match=f"lab:amqp:{sourcing.id}:*"))
