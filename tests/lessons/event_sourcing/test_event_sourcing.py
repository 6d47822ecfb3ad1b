"""The event sourcing lesson on the real runtime: its services forked by the lab's supervisor.

The sandbox comes from the lab's own host and supervisor (tests/sandboxes.py);
experiments run as the platform runs them, in the supervisor's forked runner.
The evidence is the log itself (read straight from the RabbitMQ stream), the
services' own answers and the broker's objects.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from types import SimpleNamespace

import pika
import pika.exceptions
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_services.event_sourcing.services.accounts.client import AccountsClient
from sandbox_services.event_sourcing.domain import Command, DomainError
from sandbox_services.event_sourcing.projections import project
from sandbox_services.event_sourcing.services.projector.client import ProjectorClient
from sandbox_services.event_sourcing import LAB, hooks
from sandbox_services.event_sourcing import knobs as config
from sandbox_services.broker.naming import stream_arguments
from sandbox_services.broker.probes import wait_until
from sandbox_services.broker import stream as stream_module
from sandbox_services.broker.stream import read_stream
from sandbox_services.broker.sweeper import (
    delete_objects,
    forget_streams,
    record_stream,
    sweep_orphan_streams,
)
from sandbox_services.runtime.config import load_config
from sandbox_services.runtime.keys import DECLARED_STREAMS
from sandbox_services.runtime.launcher import running_host
from tests.broker import broker_has
from tests.lessons.async_messaging.test_async_messaging import CuttableProxy
from tests.sandboxes import RunFailed, Sandbox, start_sandbox
from tests.sandboxes import wait_until as wait_until_sync

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
# The tests' Redis database (make test sets REDIS_URL), the one the hosts they start use.
REDIS_URL = load_config().redis_url
pytestmark = pytest.mark.timeout(240)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    """One event sourcing sandbox for the module's tests, on the real runtime."""
    return lesson_sandbox("event-sourcing")


def hook_context(box: Sandbox) -> SimpleNamespace:
    """Return what the lesson's hooks read of their ctx, for this sandbox."""
    return SimpleNamespace(
        sandbox_id=box.id,
        prefix=box.prefix,
        workdir=box.workdir,
        amqp_url=box.host.config.amqp_url,
        redis_url=box.host.config.redis_url,
        address=box.address,
        addresses=box.addresses,
    )


commands = st.lists(
    st.tuples(st.sampled_from(["deposit", "deposit", "withdraw"]), st.integers(1, 400)),
    min_size=1,
    max_size=25,
)


async def append_history(accounts: AccountsClient, account_id: str, history) -> list[int]:
    """Apply a history of commands; return the expected balance after each version."""
    await accounts.execute(Command(account_id, "open"))
    balances = [0, 0]
    for kind, amount in history:
        try:
            await accounts.execute(Command(account_id, kind, amount))
        except DomainError:
            continue  # overdraft refused: no event
        balances.append(balances[-1] + (amount if kind == "deposit" else -amount))
    return balances


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=commands, data=st.data())
def test_state_as_of_any_version_equals_the_fold_of_its_first_events(sandbox, history, data):
    async def scenario():
        accounts = AccountsClient(sandbox.address("accounts"))
        account_id = f"acct-{uuid.uuid4().hex[:8]}"
        try:
            balances = await append_history(accounts, account_id, history)
            versions = data.draw(
                st.lists(st.integers(0, len(balances) - 1), min_size=1, max_size=4)
            )
            for version in versions:
                state = await accounts.account(account_id, as_of=version)
                assert (state.version, state.balance) == (version, balances[version])
        finally:
            await accounts.close()

    run(scenario())


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=commands, view=st.sampled_from(["balances", "statistics"]))
def test_replay_from_offset_zero_rebuilds_the_same_projection(sandbox, history, view):
    async def scenario():
        accounts = AccountsClient(sandbox.address("accounts"))
        projector = ProjectorClient(sandbox.address("projector"))
        try:
            await append_history(accounts, f"acct-{uuid.uuid4().hex[:8]}", history)
            head = await accounts.head()

            async def at_head() -> bool:
                return (await projector.view(view))["events"] >= head

            assert await wait_until(at_head, timeout_s=30)
            before = (await projector.view(view))["state"]
            await projector.rebuild(view)
            assert await wait_until(at_head, timeout_s=30)
            after = (await projector.view(view))["state"]
            assert after == before
            # And both equal the projection computed straight from the log.
            log = await asyncio.to_thread(
                lambda: [e for _, e, _ in read_stream(AMQP_URL, sandbox.prefix + config.STREAM)]
            )
            assert len({(e["account_id"], e["version"]) for e in log}) == head
            assert after == project(view, log)
        finally:
            await accounts.close()
            await projector.close()

    run(scenario())


@pytest.mark.parametrize(
    ("experiment", "params"),
    [
        ("replay", {"events": 200}),
        ("state-as-of", {"history": 15, "points": 5}),
        ("late-projection", {"events": 800, "kind": "activity"}),
        ("log-vs-queue", {"events": 40}),
        ("optimistic-concurrency", {"contenders": 4}),
    ],
)
def test_experiment_meets_its_expectation(sandbox, experiment, params):
    result = sandbox.run(experiment, params)
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["headline"]


def test_optimistic_concurrency_refuses_with_a_clear_error(sandbox):
    result = sandbox.run("optimistic-concurrency", {"contenders": 2})
    outcomes = [row[1] for row in result["table"]["rows"]]
    assert sorted(o.split(" ")[0] for o in outcomes) == ["appended", "refused"]
    refused = next(row for row in result["table"]["rows"] if row[1].startswith("refused"))
    assert "expected_version" in refused[2] and "is at version" in refused[2]


def test_log_keeps_events_a_queue_forgets(sandbox):
    result = sandbox.run("log-vs-queue", {"events": 20})
    rows = {row[0]: row[1:] for row in result["table"]["rows"]}
    assert rows["left after reading"][0] == 0
    assert rows["second read"] == [0, 20]
    # The stream's counts are the broker's answers too, not typed text.
    assert all(isinstance(rows[label][1], int) for label in rows)


def test_log_vs_queue_reads_the_queue_a_second_time(sandbox):
    # Guards the queue's "second read" against a typed 0: messages put straight into
    # the compare queue while the run goes on are there for its second reader.
    queue = sandbox.prefix + config.COMPARE_QUEUE
    stop, published = threading.Event(), []

    def publish() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            channel = connection.channel()
            while not stop.is_set():
                # Unroutable (dropped) until the run declares the queue and after it deletes it.
                channel.basic_publish("", queue, b'{"extra": true}')
                published.append(1)
                stop.wait(0.02)
        finally:
            connection.close()

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        result = sandbox.run("log-vs-queue", {"events": 20})
    finally:
        stop.set()
        thread.join(10)
    rows = {row[0]: row[1:] for row in result["table"]["rows"]}
    assert rows["second read"][1] == 20  # the stream's: only the events went to it
    assert 0 < rows["second read"][0] <= len(published), rows


def test_replay_times_the_appends_it_compares_with_the_rebuild(sandbox):
    # Guards the append figures against a typed claim: the time shown covers at least
    # the accounts service's own "load history" spans of this run, and fits in the run.
    since = sandbox.last_seq()
    started = time.monotonic()
    result = sandbox.run("replay", {"events": 300})
    wall_s = time.monotonic() - started
    figures = {item["label"]: item["value"] for item in result["summary"]}

    def loads() -> list[dict]:
        return [
            span
            for span in sandbox.spans(since)
            if span["service"] == "accounts" and span["name"] == "load history"
        ]

    spans = wait_until_sync(loads, timeout_s=10)
    in_spans_s = sum(span["end_ns"] - span["start_ns"] for span in spans) / 1e9
    assert in_spans_s <= figures["append time"] <= wall_s
    # The rates are of the unrounded times; the figures shown are rounded to the ms.
    assert figures["append rate"] == pytest.approx(300 / figures["append time"], rel=0.02)
    assert 0 < figures["rebuild time"] <= wall_s - figures["append time"]
    assert figures["replay rate"] == pytest.approx(
        figures["events replayed"] / figures["rebuild time"], rel=0.02
    )


def test_a_replay_whose_first_delivery_is_slow_still_reads_the_whole_log(monkeypatch):
    # On a loaded machine the broker can take longer to start delivering a stream
    # than the pause allowed between two deliveries; that read must not look empty.
    name = f"test-slow-first-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments=stream_arguments(max_age="1h"))
    channel.confirm_delivery()
    for seq in range(100):
        channel.basic_publish("", name, json.dumps({"seq": seq}).encode())
    consume = stream_module.untraced_basic_consume

    def late_consume(reader_channel, queue, callback, **kwargs):
        # The consumer starts a second after the reader begins to wait for it.
        reader_channel.connection.call_later(
            1.0, lambda: consume(reader_channel, queue, callback, **kwargs)
        )

    monkeypatch.setattr(stream_module, "untraced_basic_consume", late_consume)
    try:
        seqs = [event["seq"] for _, event, _ in read_stream(AMQP_URL, name, idle_s=0.5)]
    finally:
        channel.queue_delete(name)
        connection.close()
    assert seqs == list(range(100))


def test_bad_commands_and_parameters_are_refused_naming_the_field(sandbox):
    async def scenario():
        accounts = AccountsClient(sandbox.address("accounts"))
        account_id = f"acct-{uuid.uuid4().hex[:8]}"
        try:
            await accounts.execute(Command(account_id, "open"))
            with pytest.raises(DomainError, match="amount"):
                await accounts.execute(Command(account_id, "deposit", 0))
            with pytest.raises(DomainError, match="type"):
                await accounts.execute(Command(account_id, "steal", 5))
            with pytest.raises(DomainError, match="as_of"):
                await accounts.account(account_id, as_of=99)
        finally:
            await accounts.close()

    run(scenario())
    with pytest.raises(RunFailed) as failed:
        sandbox.run("replay", {"events": 10**9})
    assert "ParameterError" in failed.value.error and "events:" in failed.value.error


def test_metrics_hook_reports_the_log_and_each_views_lag(sandbox):
    async def sample() -> dict:
        context = hook_context(sandbox)
        try:
            return await hooks.metrics(context)
        finally:  # the gauges process keeps its clients; this loop ends here
            await hooks.close_clients(context.sandbox_id)

    gauges = run(sample())
    log = gauges["queues"][config.STREAM]
    assert set(log) == {"depth", "unacked", "consumers", "publish_rate", "deliver_rate"}
    assert log["depth"] > 0 and log["consumers"] == 2
    assert set(gauges["views"]) == {"balances", "statistics"}


def test_stopping_the_sandbox_removes_stream_exchange_and_record(new_sandbox):
    box = new_sandbox("event-sourcing")
    box.run("log-vs-queue", {"events": 5})
    stream = box.prefix + config.STREAM
    assert broker_has(stream)
    assert redis.Redis.from_url(REDIS_URL).sismember(DECLARED_STREAMS, stream)
    box.stop()  # the supervisor runs the lesson's teardown hook
    assert not broker_has(stream)
    assert not broker_has(box.prefix + config.COMPARE_QUEUE)
    assert not broker_has(box.prefix + config.EXCHANGE, "exchange")
    assert not redis.Redis.from_url(REDIS_URL).sismember(DECLARED_STREAMS, stream)


def test_sweeper_deletes_streams_of_gone_sandboxes_only():
    alive, dead = uuid.uuid4().hex, uuid.uuid4().hex
    names = [f"lab.{alive}.log", f"lab.{dead}.log"]
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_declare(name, durable=True, arguments=stream_arguments())
            record_stream(REDIS_URL, name)
        # Only `dead` is gone: streams of other sandboxes in this Redis must not be touched.
        deleted = sweep_orphan_streams(
            AMQP_URL, lambda sandbox_id: sandbox_id != dead, redis_url=REDIS_URL
        )
        assert f"lab.{dead}.log" in deleted and f"lab.{alive}.log" not in deleted
        assert broker_has(f"lab.{alive}.log") and not broker_has(f"lab.{dead}.log")
        members = redis.Redis.from_url(REDIS_URL).smembers(DECLARED_STREAMS)
        assert f"lab.{dead}.log".encode() not in members
    finally:
        if connection.is_open:
            connection.close()
        delete_objects(AMQP_URL, queues=names)
        forget_streams(REDIS_URL, names)


def test_the_lab_carries_the_parameters_knobs_declares():
    assert {spec.name: spec.parameters for spec in LAB.experiments} == config.PARAMETERS


def test_a_replay_through_a_broker_outage_stays_exact_and_reports_it():
    proxy = CuttableProxy()
    proxied = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    outcome: list[dict] = []
    try:
        # A host of its own, whose sandboxes reach RabbitMQ through the proxy only.
        with running_host(extra_env={"AMQP_URL": proxied}) as host:
            box = start_sandbox(host, "event-sourcing")
            running = threading.Thread(
                target=lambda: outcome.append(box.run_reply("replay", {"events": 600}))
            )
            running.start()
            time.sleep(0.5)
            proxy.cut(0.8)
            running.join(200)
            assert outcome, "the run did not answer within 200 s"
            # The aggregate's view of the log and the projection agree after the outage.
            head = run(_head(box))
    finally:
        proxy.close()
    reply = outcome[0]
    assert reply["state"] == "done", reply
    result = reply["result"]
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert any("dropped" in note for note in result.get("notes", [])), result
    assert head >= 600


async def _head(box: Sandbox) -> int:
    accounts = AccountsClient(box.address("accounts"))
    try:
        return await accounts.head()
    finally:
        await accounts.close()
