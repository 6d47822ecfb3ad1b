"""The async messaging lesson's experiments past the first five, and its results' honesty.

Each test runs the real experiment in a real sandbox and checks what it claims
against evidence of its own: the mail provider's and the consumers' SQLite
stores in the sandbox's directory, and the broker's counts.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from sandbox_services.async_messaging.knobs import (
    EXPIRES_MS,
    PARTITION_QUEUE,
    bounded_queue,
    guard_queue,
)
from sandbox_services.async_messaging.partitions import murmur2, partition_of
from sandbox_services.async_messaging.reports import (
    LOAD_SAMPLE_RATIO,
    at_least_once_headline,
    competing_summary,
    depth_rates,
    poison_headline,
    sampling_note,
    sync_vs_async_headline,
)
from sandbox_services.async_messaging.scenario import with_broker_report
from sandbox_services.async_messaging.services.mail_provider.server_http import STORE_FILE
from tests.broker import AMQP_URL, queue_counts
from tests.sandboxes import Sandbox

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("async-messaging")


@contextlib.contextmanager
def sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """Open a service's own SQLite file for one read, and close it at once (see docs: fork)."""
    db = sqlite3.connect(path, timeout=10)
    try:
        yield db
    finally:
        db.close()


def provider_rows(box: Sandbox, after_id: int) -> list[tuple[int, str, str | None]]:
    """Return the provider's sends (id, message id, key) recorded after ``after_id``."""
    with sqlite(box.workdir / STORE_FILE) as db:
        return db.execute(
            "SELECT id, message_id, idempotency_key FROM sends WHERE id > ? ORDER BY id",
            (after_id,),
        ).fetchall()


def last_send_id(box: Sandbox) -> int:
    path = box.workdir / STORE_FILE
    if not path.exists():
        return 0
    with sqlite(path) as db:
        return db.execute("SELECT COALESCE(MAX(id), 0) FROM sends").fetchone()[0]


def email_effects(box: Sandbox, message_ids: set[str]) -> dict[str, int]:
    """Return how many email rows the consumer's own store holds for each message."""
    with sqlite(box.workdir / "email.sqlite3") as db:
        rows = db.execute("SELECT message_id, COUNT(*) FROM effects GROUP BY message_id")
        return {mid: n for mid, n in rows if mid in message_ids}


# --- (a) the external side effect ------------------------------------------------------


def test_a_crash_before_the_commit_sends_twice_at_the_provider_and_a_key_ends_it(sandbox):
    before = last_send_id(sandbox)
    result = sandbox.run("external-side-effect", {"orders": 4, "crashes": 2})
    rows = provider_rows(sandbox, before)
    plain = [mid for _, mid, key in rows if key is None]
    keyed = [mid for _, mid, key in rows if key is not None]
    # The provider's own record: without a key, exactly the two crashed orders went twice.
    assert len(set(plain)) == 4
    assert sorted(plain.count(mid) for mid in set(plain)) == [1, 1, 2, 2]
    # With the key, one send per order, whatever the crashes.
    assert len(keyed) == len(set(keyed)) == 4
    # The consumer's store saw each order once in both phases: its dedup did its part.
    effects = email_effects(sandbox, set(plain) | set(keyed))
    assert sorted(effects.values()) == [1] * 8
    figures = {item["label"]: item["value"] for item in result["summary"]}
    assert figures["provider sends (no key)"] == len(plain)
    assert figures["duplicate sends (no key)"] == len(plain) - len(set(plain))
    assert figures["provider sends (with key)"] == len(keyed)
    assert result["ok"] is True


# --- (b) backpressure: a queue length limit --------------------------------------------


def numbers_in_queue(queue: str) -> list[int]:
    """Read a queue's message numbers with the broker's own basic.get, leaving them there."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        numbers = []
        while (got := channel.basic_get(queue, auto_ack=False))[0] is not None:
            numbers.append(json.loads(got[2]))
        return numbers
    finally:
        connection.close()  # the unacked messages go back to the queue


def test_reject_publish_nacks_the_newest_and_drop_head_acks_all_and_drops_the_oldest(sandbox):
    result = sandbox.run("queue-length-limit", {"max_length": 5, "messages": 12})
    figures = {item["label"]: item["value"] for item in result["summary"]}
    reject = bounded_queue(sandbox.prefix, "reject-publish")
    drop = bounded_queue(sandbox.prefix, "drop-head")
    # The broker's own count and contents, read apart from the run.
    assert queue_counts(reject) == (5, 0)
    assert queue_counts(drop) == (5, 0)
    assert numbers_in_queue(reject) == [0, 1, 2, 3, 4]
    assert numbers_in_queue(drop) == [7, 8, 9, 10, 11]
    # What the producer was told: nacks for the refused ones, acks for the dropped ones.
    assert figures["reject-publish nacks"] == 12 - 5
    assert figures["reject-publish acks"] == 5
    assert figures["drop-head nacks"] == 0
    assert figures["drop-head acks"] == 12
    assert figures["drop-head lost after the ack"] == 12 - 5
    assert figures["reject-publish lost after the ack"] == 0


# --- (c) Kafka's model on RabbitMQ 3.10 ------------------------------------------------

# Kafka's own test vectors for Utils.murmur2 (clients/src/test/.../utils/UtilsTest.java).
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_the_partitioner_hashes_keys_as_kafkas_murmur2_does():
    assert {data: murmur2(data) for data in KAFKA_MURMUR2} == KAFKA_MURMUR2
    # The sign bit is cleared, not abs(): a negative hash lands where Kafka puts it.
    assert partition_of("21", 7) == (-973932308 & 0x7FFFFFFF) % 7


def declared_with(queue: str, arguments: dict) -> bool:
    """Tell whether the broker accepts a redeclare with these arguments (it refuses a mismatch)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_declare(queue, durable=True, arguments=arguments)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_partitions_keep_each_key_in_order_until_the_partition_count_changes(sandbox):
    result = sandbox.run("partitions", {"keys": 12, "per_key": 10, "partitions": 3, "work_ms": 5})
    figures = {item["label"]: item["value"] for item in result["summary"]}
    # The broker's own word: four partition queues, single active consumer, all drained.
    for n in range(4):
        name = sandbox.prefix + PARTITION_QUEUE.format(n)
        single = {"x-expires": EXPIRES_MS, "x-single-active-consumer": True}
        assert declared_with(name, single), name
        assert not declared_with(name, {"x-expires": EXPIRES_MS}), name
        assert queue_counts(name)[0] == 0
    assert queue_counts(sandbox.prefix + PARTITION_QUEUE.format(4)) is None
    # The keys the run says moved are the ones Kafka's partitioner moves from 3 to 4.
    keys = [f"customer-{n}" for n in range(12)]
    moved = [k for k in keys if partition_of(k, 3) != partition_of(k, 4)]
    assert figures["keys moved to another partition"] == len(moved)
    assert figures["keys out of order (steady)"] == 0
    assert figures["keys out of order (leave)"] == 0
    assert figures["messages handled by member-c before the leave"] == 0
    # member-a held partitions 0 and 2; both went to the next member in line.
    assert figures["partitions moved on the leave"] == 2
    assert 0 < figures["keys out of order (repartition)"] <= len(moved)
    rows = result["table"]["rows"]
    assert all(", " not in row[2] for row in rows if row[0] != "partitions changed"), rows


# --- results say what was measured, not what was asked for ----------------------------


def test_the_at_least_once_note_counts_the_redeliveries_the_consumer_saw(sandbox):
    def redelivered() -> int:
        with sqlite(sandbox.workdir / "email.sqlite3") as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'redelivered'").fetchone()
        return row[0] if row else 0

    before = redelivered()
    params = {"orders": 5, "crashes": 2, "idempotent": True, "consumer": "email"}
    result = sandbox.run("at-least-once", params)
    seen = redelivered() - before
    assert seen >= 2  # the store's own count: each crash brought its message back
    # Was the constant "Prefetch was 1 ..., so each crash left exactly one message unacked".
    assert result["notes"] == [
        f"The consumer reported prefetch 1 in force during the run, and counted "
        f"{seen} redelivered messages for 2 crashes."
    ]


def test_at_least_once_headline_follows_the_counts_not_the_idempotent_switch():
    # Was "exactly once each, thanks to deduplication" whenever idempotent was asked for.
    assert "2 duplicates" in at_least_once_headline(
        consumer="email", crashes=2, effects=7, distinct=5
    )
    assert "once each" in at_least_once_headline(consumer="email", crashes=2, effects=5, distinct=5)


def test_poison_headline_counts_the_good_orders_handled_not_those_placed():
    # Was "the other {good_orders} orders went through", the parameter.
    letter = {"attempts": 3, "reason": "rejected"}
    text = poison_headline(letter=letter, good_handled=2, good_placed=5, outcome="left")
    assert "handled 2 of the 5 good orders" in text
    assert "tried 3 times" in text
    assert "did not reach" in poison_headline(
        letter=None, good_handled=5, good_placed=5, outcome="left"
    )


def test_sync_vs_async_headline_reports_each_orders_measured_outcome():
    # Was "both were accepted" whenever the sync order had not failed under a stop.
    text = sync_vs_async_headline(
        sync_p50=9.0,
        async_p50=2.0,
        fault="slow",
        outcomes={"sync": "orders unreachable: timeout", "async": "accepted"},
    )
    assert "sync order was refused (orders unreachable: timeout)" in text
    assert "async one accepted" in text


def test_competing_consumers_throughput_counts_the_orders_handled():
    # Was orders asked for / elapsed, even when not all were handled.
    summary = {
        item["label"]: item["value"]
        for item in competing_summary(handled=150, published_s=1.0, elapsed_s=3.0)
    }
    assert summary["throughput"] == 50.0
    assert summary["orders handled"] == 150
    assert sampling_note(LOAD_SAMPLE_RATIO) == "Traces were sampled at 2% during the load."


def test_broker_note_gives_the_counts_and_claims_no_recovery_it_did_not_count():
    # Was "the services reconnected, re-sent every unconfirmed publish, and resumed consuming".
    result = with_broker_report({}, 1, 3, resent=4)
    assert result["notes"] == [
        "The broker connection dropped 2 time(s) during the run, by the services' own count "
        "of their reconnects; the order service re-sent 4 unconfirmed publishes."
    ]
    assert with_broker_report({}, 2, 2, resent=0) == {}


def test_fill_and_drain_rates_come_from_the_depth_samples():
    points = [[0.0, 0], [1.0, 10], [2.0, 20], [2.2, 20], [2.4, 5], [2.6, 0]]
    assert depth_rates(points, fault_at=0.0, restored_at=2.0) == {
        "filled at": 10.0,
        "drained at": 33.3,
    }
    assert depth_rates([[0.0, 0]], fault_at=0.0, restored_at=1.0) == {
        "filled at": None,
        "drained at": None,
    }


def test_temporal_decoupling_reports_measured_fill_and_drain_rates(sandbox):
    params = {"orders": 20, "consumer": "audit", "fault": "stop", "rate": 20.0, "slow_ms": 200}
    result = sandbox.run("temporal-decoupling", params)
    figures = {item["label"]: item["value"] for item in result["summary"]}
    points = result["charts"][0]["series"][0]["points"]
    assert figures["filled at"] and figures["drained at"]
    # The fill rate cannot exceed the depth reached over the sampled time.
    assert figures["filled at"] <= max(depth for _, depth in points) / 0.2


# --- (d) quorum queues: the broker's delivery limit -----------------------------------


def dead_letter_reasons(queue: str) -> list[str]:
    """Read the x-death reason of each letter in a dead-letter queue, leaving them there."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        reasons = []
        while (got := channel.basic_get(queue, auto_ack=False))[0] is not None:
            death = (got[1].headers or {})["x-death"][0]
            reasons.append(
                death["reason"].decode() if isinstance(death["reason"], bytes) else death["reason"]
            )
        return reasons
    finally:
        connection.close()


def test_a_quorum_queue_dead_letters_a_requeued_poison_message_at_its_delivery_limit(sandbox):
    params = {"delivery_limit": 2, "give_up": 50, "good": 3}
    result = sandbox.run("delivery-limit", params)
    figures = {item["label"]: item["value"] for item in result["summary"]}
    quorum, classic = (guard_queue(sandbox.prefix, kind) for kind in ("quorum", "classic"))
    # The broker's own evidence: one letter in each dead queue, and why it is there.
    assert dead_letter_reasons(quorum + ".dead") == ["delivery_limit"]
    assert dead_letter_reasons(classic + ".dead") == ["rejected"]
    assert queue_counts(quorum) == (0, 0) and queue_counts(classic) == (0, 0)
    quorum_arguments = {
        "x-expires": EXPIRES_MS,
        "x-queue-type": "quorum",
        "x-delivery-limit": 2,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": quorum + ".dead",
    }
    assert declared_with(quorum, quorum_arguments)
    # The first delivery, then one per redelivery the limit allows.
    assert figures["quorum deliveries"] == 2 + 1
    assert figures["classic deliveries"] == 50
    assert figures["good handled (quorum)"] == figures["good handled (classic)"] == 3
