"""A log that lives long, on the real runtime: snapshots, upcasting, retention.

The evidence is the broker's own (a stream read with pika, its offsets), the
services' own stores and answers, and the spans, never an experiment's verdict
of itself.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from contextlib import closing

import pika
import pytest

from sandbox_services.broker.stream import read_stream
from sandbox_services.event_sourcing import knobs
from sandbox_services.event_sourcing.domain import upcast
from sandbox_services.event_sourcing.projections import project
from sandbox_services.event_sourcing.services.accounts.client import AccountsClient
from sandbox_services.event_sourcing.services.projector.client import ProjectorClient
from sandbox_services.event_sourcing.services.projector.interface import ViewError
from tests.broker import broker_has
from tests.sandboxes import Sandbox

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    """One event sourcing sandbox for the module's tests, on the real runtime."""
    return lesson_sandbox("event-sourcing")


def balances_of(box: Sandbox, names: list[str]) -> dict[str, int]:
    """Return each account's balance as the aggregate holds it."""

    async def ask() -> dict[str, int]:
        accounts = AccountsClient(box.address("accounts"))
        try:
            return {name: (await accounts.account(name)).balance for name in names}
        finally:
            await accounts.close()

    return asyncio.run(ask())


def summary(result: dict) -> dict:
    return {item["label"]: item["value"] for item in result.get("summary", [])}


# --- retention drops the head -----------------------------------------------------------


def test_over_amqp_a_replay_from_offset_zero_starts_at_the_oldest_kept_offset():
    # RabbitMQ 3.10.8 over AMQP 0-9-1: once retention has deleted the first segments,
    # a consumer asking for offset 0 gets the oldest kept message, and no error.
    name = f"test-retention-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    arguments = {
        "x-queue-type": "stream",
        "x-max-length-bytes": 40_000,
        "x-stream-max-segment-size-bytes": 10_000,
    }
    try:
        channel.queue_declare(name, durable=True, arguments=arguments)
        channel.confirm_delivery()
        for seq in range(600):
            channel.basic_publish("", name, json.dumps({"seq": seq, "pad": "x" * 100}).encode())
        read = [(offset, event["seq"]) for offset, event, _ in read_stream(AMQP_URL, name, start=0)]
        assert channel.is_open  # nothing was refused
    finally:
        channel.queue_delete(name)
        connection.close()
    first_offset, first_seq = read[0]
    assert first_offset > 0 and first_seq > 0, read[:3]
    assert read[-1][1] == 599  # the tail is all there
    assert [seq for _, seq in read] == list(range(first_seq, 600))  # a whole suffix, in order


def test_retention_experiment_rebuilds_wrong_balances_from_a_log_without_its_head(sandbox):
    result = sandbox.run("retention", {"events": 600, "kept_kb": 32})
    figures = summary(result)
    assert figures["first offset read"] > 0
    assert 0 < figures["events deleted by retention"] < 600
    rows = result["table"]["rows"]
    names = [row[0] for row in rows]
    # The "aggregate" column is the aggregate's own state, asked here independently.
    truth = balances_of(sandbox, names)
    assert {row[0]: row[1] for row in rows} == truth
    wrong = [row for row in rows if row[2] != row[1]]
    assert len(wrong) == figures["wrong balances"] > 0
    # Each wrong balance comes from a history read without its start: a detectable gap.
    assert all(row[3] != 1 for row in wrong)
    assert figures["accounts not starting at version 1"] == sum(row[3] != 1 for row in rows)
    # The lesson's own log lost nothing: folded from offset 0 it gives the true balances.
    log = [event for _, event, _ in read_stream(AMQP_URL, sandbox.prefix + knobs.STREAM)]
    folded = project("balances", log)
    assert {name: folded[name] for name in names} == truth
    # The short stream was the run's own and is gone.
    assert not broker_has(sandbox.prefix + knobs.RETENTION_STREAM)


def test_retention_with_room_to_spare_deletes_nothing(sandbox):
    result = sandbox.run("retention", {"events": 100, "kept_kb": 4096})
    figures = summary(result)
    assert figures["first offset read"] == 0
    assert figures["events deleted by retention"] == 0 and figures["wrong balances"] == 0


# --- upcasting ----------------------------------------------------------------------------


def test_v2_code_reads_the_v1_events_in_the_log_through_the_upcaster(sandbox):
    result = sandbox.run("upcasting", {"v1_commands": 8, "v2_commands": 4})
    figures = summary(result)
    account_id = result["headline"].split(":", 1)[0]
    stored = [
        event
        for _, event, _ in read_stream(AMQP_URL, sandbox.prefix + knobs.STREAM)
        if event["account_id"] == account_id
    ]
    # The log holds the v1 shape as written: no schema, BalanceChanged with a signed delta.
    v1 = [event for event in stored if "schema" not in event]
    assert len(v1) == figures["v1 events in the log"] >= 2
    assert v1[0]["type"] == "AccountOpened"
    assert all(event["type"] == "BalanceChanged" and event["delta"] for event in v1[1:])
    assert all(event["schema"] == 2 for event in stored[len(v1) :])
    assert [event["version"] for event in stored] == list(range(1, len(stored) + 1))
    # What v2 code computes, checked against the aggregate's own state.
    truth = balances_of(sandbox, [account_id])[account_id]
    assert (
        project("balances", stored)[account_id] == truth == figures["balance (v2 view, upcaster)"]
    )
    without = project("balances", stored, upcasting=False)[account_id]
    assert figures["balance (no upcaster)"] == without
    assert figures["wrong balances without the upcaster"] == int(without != truth)
    # The table shows a stored v1 event and its v2 translation.
    rows = {row[0]: row[1] for row in result["table"]["rows"]}
    sample = json.loads(rows["a v1 event as stored in the log"])
    assert sample in v1 and json.loads(rows["the same event after the upcaster"]) == upcast(sample)
    # A restarted aggregate recovers from the log, v1 events included, to the same balance.
    sandbox.control("restart", "accounts")
    assert balances_of(sandbox, [account_id])[account_id] == truth


def test_the_upcaster_translates_each_v1_shape_and_leaves_v2_alone():
    opened = {"account_id": "a", "type": "AccountOpened", "version": 1, "meta": {}}
    assert upcast(opened) == {**opened, "schema": 2}
    withdrawn = {"account_id": "a", "type": "BalanceChanged", "version": 3, "delta": -40}
    assert upcast(withdrawn) == {
        "account_id": "a",
        "type": "Withdrawn",
        "version": 3,
        "amount": 40,
        "schema": 2,
    }
    v2 = {"account_id": "a", "type": "Deposited", "version": 2, "amount": 5, "schema": 2}
    assert upcast(v2) is v2


# --- snapshots ------------------------------------------------------------------------------


def snapshot_row(box: Sandbox, view: str) -> tuple[int, int] | None:
    """Return (next_offset, events) of a view's snapshot, read from the projector's own SQLite."""
    with closing(sqlite3.connect(box.workdir / "projector.sqlite3")) as db:
        return db.execute(
            "SELECT next_offset, events FROM snapshots WHERE name = ?", (view,)
        ).fetchone()


def test_a_rebuild_from_a_snapshot_reads_only_the_tail(sandbox):
    result = sandbox.run("snapshots", {"events": 1500, "tail": 80})
    figures = summary(result)
    columns = {row[0]: row[1:] for row in result["table"]["rows"]}
    # The snapshot is in the projector's store, at the offset the rebuild started from.
    stored = snapshot_row(sandbox, knobs.SNAPSHOT_VIEW)
    assert stored is not None
    assert columns["first offset read"] == [0, stored[0]]
    # The broker's own offsets: what lies after the snapshot is what the rebuild read.
    stream = sandbox.prefix + knobs.STREAM
    whole = list(read_stream(AMQP_URL, stream))
    tail = [offset for offset, _, _ in read_stream(AMQP_URL, stream, start=stored[0])]
    assert tail and tail[0] >= stored[0]
    tail = [offset for offset in tail if offset >= stored[0]]
    assert figures["events read (from snapshot)"] == len(tail) >= 80
    assert figures["events read (from zero)"] == len(whole)
    assert figures["identical"] is True
    assert 0 < figures["rebuild time (from snapshot)"] and 0 < figures["rebuild time (from zero)"]


def test_a_rebuild_from_a_missing_snapshot_is_refused_naming_it(sandbox):
    async def ask() -> str:
        projector = ProjectorClient(sandbox.address("projector"))
        try:
            with pytest.raises(ViewError) as refused:
                await projector.rebuild("statistics", source="snapshot", until_offset=0)
            return str(refused.value)
        finally:
            await projector.close()

    assert "snapshot" in asyncio.run(ask())
