"""The async messaging lesson against the real RabbitMQ and Redis, in a real sandbox.

The sandbox comes from tests/sandboxes.py (a real host, supervisor and forked
services); the tests read their evidence apart from the experiments' own
figures: each consumer's SQLite store in the sandbox's directory, and the
broker's queue counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_services.async_messaging import knobs as config
from sandbox_services.broker.consumer import ConsumerLoop, DeliveryOutcome, start_thread
from sandbox_services.broker.probes import wait_until
from sandbox_services.broker.publisher import Publisher
from sandbox_services.broker.sweeper import delete_objects
from sandbox_services.async_messaging.services.consumers.client import ConsumerClient
from sandbox_services.async_messaging.services.consumers.server_amqp import CRASH_EXIT_CODE
from sandbox_services.async_messaging.services.consumers.store import ConsumerStore
from sandbox_services.async_messaging.services.orders.client import OrdersHttpClient
from sandbox_services.async_messaging.services.orders.interface import Order
from sandbox_services.runtime.launcher import running_host
from tests.broker import broker_has, broker_report, queue_counts
from tests.sandboxes import Sandbox, SandboxError, start_sandbox

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def sandbox(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("async-messaging")


def run(coro):
    return asyncio.run(coro)


@contextlib.contextmanager
def read_store(box: Sandbox, name: str) -> Iterator[ConsumerStore]:
    """Open a consumer's own store (its SQLite file in the sandbox's directory) for one read.

    Closed at once: the consumer keeps writing to it, and a reader left open
    would hold SQLite's shared lock between reads.
    """
    store = ConsumerStore(box.workdir / f"{name}.sqlite3")
    try:
        yield store
    finally:
        store.close()


def start_consumer(box: Sandbox, name: str) -> None:
    """Start a consumer; one that dies on a message marked to crash it is started again."""
    for _ in range(10):
        try:
            box.control("start", name)
            return
        except SandboxError as error:
            # The crash is the experiment's own (exit 70 after the work, before the
            # ack); the message comes back redelivered and does not crash it twice.
            if f"exited with code {CRASH_EXIT_CODE}" not in str(error):
                raise
    raise AssertionError(f"{name} kept crashing on start")


def consumers_alive(box: Sandbox) -> None:
    for name in config.CONSUMERS:
        if not box.addresses(name):
            start_consumer(box, name)


@settings(
    max_examples=int(os.environ.get("LAB_EXAMPLES", "4")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    orders=st.integers(3, 12),
    idempotent=st.booleans(),
    crashes=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(config.CONSUMERS)), max_size=4),
    kills=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(config.CONSUMERS)), max_size=3),
)
def test_every_order_reaches_every_consumer_through_crashes_and_restarts(
    sandbox, orders, idempotent, crashes, kills
):
    def crash_count(name: str) -> int:
        with read_store(sandbox, name) as store:
            counters = store.stats()["counters"]
        return counters.get("crashes", 0)

    async def scenario() -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        clients = {n: ConsumerClient(lambda n=n: sandbox.address(n)) for n in config.CONSUMERS}
        placer = OrdersHttpClient(sandbox.address("orders"))
        try:
            consumers_alive(sandbox)
            crashes_before = {name: crash_count(name) for name in config.CONSUMERS}
            for client in clients.values():
                await client.configure(idempotent=idempotent)
            ids = []
            for i in range(orders):
                crash_in = sorted({c for at, c in crashes if at == i})
                order = Order(uuid.uuid4().hex, "learner@example.com", 100 + i, crash_in)
                await placer.place_order(order, mode="async")
                ids.append(order.order_id)
                for at, victim in kills:
                    if at == i:
                        sandbox.control("kill", victim)
                        start_consumer(sandbox, victim)

            async def all_seen() -> bool:
                consumers_alive(sandbox)
                for name in config.CONSUMERS:
                    with read_store(sandbox, name) as store:
                        seen = set(store.handled_ids())
                    if not set(ids) <= seen:
                        return False
                return True

            if not await wait_until(all_seen, timeout_s=60, every_s=0.2):
                missing = {}
                for name in config.CONSUMERS:
                    with read_store(sandbox, name) as store:
                        missing[name] = sorted(set(ids) - set(store.handled_ids()))
                queues = {n: queue_counts(sandbox.prefix + n) for n in config.CONSUMERS}
                sandbox.dump_stacks()
                print(broker_report(sandbox.prefix))
                pytest.fail(
                    f"orders not handled: {missing}; services: {sandbox.states()}; "
                    f"queues (ready, consumers): {queues}"
                )
            # Let a crash-and-redelivery still in flight finish before counting effects.
            await asyncio.sleep(0.5)
            consumers_alive(sandbox)
            effects = {}
            for name in config.CONSUMERS:
                with read_store(sandbox, name) as store:
                    per_message = store.effects_per_message()
                effects[name] = {i: per_message.get(i, 0) for i in ids}
            crashed = {n: crash_count(n) - crashes_before[n] for n in config.CONSUMERS}
            return effects, crashed
        finally:
            await placer.close()
            for client in clients.values():
                await client.close()

    effects, crashed = run(scenario())
    for name, per_order in effects.items():
        assert all(count >= 1 for count in per_order.values()), f"{name} lost an order"
        if idempotent:
            assert all(count == 1 for count in per_order.values()), f"{name} did an effect twice"
        else:
            # Each crash came after the work and before the ack, so its message came back
            # and was done again: duplicates are counted, at least one per crash. (An order
            # marked to crash that was already redelivered, because an earlier crash took
            # it down unacked, does not crash again, so crashes <= marked orders.)
            duplicates = sum(count - 1 for count in per_order.values())
            assert duplicates >= crashed[name], (
                f"{name}: {crashed[name]} crashes, {duplicates} dups"
            )


def test_sync_order_fails_and_async_order_waits_while_email_is_stopped(sandbox):
    result = sandbox.run("sync-vs-async", {"orders": 3, "email_fault": "stop", "slow_ms": 500})
    assert result["ok"], (result.get("headline"), result.get("table"))
    sync_row, async_row = result["table"]["rows"]
    assert "email unavailable" in sync_row[3]
    assert async_row[3] == "accepted"


def test_stopped_consumer_queue_grows_then_drains_and_every_consumer_sees_every_order(sandbox):
    params = {"orders": 20, "rate": 40.0, "consumer": "audit", "fault": "stop", "slow_ms": 200}
    result = sandbox.run("temporal-decoupling", params)
    if not result["ok"]:
        sandbox.dump_stacks()
        print(broker_report(sandbox.prefix))
    assert result["ok"], (result.get("headline"), result.get("table"))
    depths = [depth for _, depth in result["charts"][0]["series"][0]["points"]]
    assert max(depths) >= 10
    assert depths[-1] == 0
    assert all(row[1] == row[2] for row in result["table"]["rows"])


def test_poison_message_is_dead_lettered_after_bounded_attempts_and_can_be_sent_back(sandbox):
    result = sandbox.run("poison-messages", {"good_orders": 3, "send_back": True})
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["dead_letter"]["attempts"] == config.MAX_ATTEMPTS
    assert result["dead_letter"]["reason"] == "rejected"
    assert result["table"]["rows"][-1][1] == "repaired, sent back and handled"


def test_competing_consumers_share_the_queue(sandbox):
    params = {"orders": 60, "replicas": 3, "prefetch": 1, "work_ms": 5.0, "scale": "before"}
    result = sandbox.run("competing-consumers", params)
    assert result["ok"], (result.get("headline"), result.get("table"))
    shares = [row[1] for row in result["table"]["rows"]]
    assert len(shares) == 3 and sum(shares) == 60 and min(shares) > 0
    assert len(sandbox.addresses("analytics")) == 1  # scaled back afterwards


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"orders": 0, "email_fault": "stop", "slow_ms": 500}, "orders"),
        ({"orders": 5, "email_fault": "explode", "slow_ms": 500}, "email_fault"),
        ({"orders": "many", "email_fault": "stop", "slow_ms": 500}, "orders"),
        ({"orders": 5, "email_fault": "stop", "slow_ms": 500, "surprise": 1}, "surprise"),
    ],
)
def test_bad_parameters_fail_the_run_naming_the_parameter(sandbox, params, name):
    reply = sandbox.run_reply("sync-vs-async", params)
    assert reply["state"] == "failed", reply
    assert "ParameterError" in reply["error"] and name in reply["error"], reply["error"]


class CuttableProxy:
    """A TCP proxy to RabbitMQ whose connections the test can cut: a broker connection loss."""

    def __init__(self) -> None:
        self.port = 0
        self._links: list[asyncio.StreamWriter] = []
        self._refusing = False
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(),), daemon=True
        )
        self._thread.start()
        self._ready.wait(5)

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._stop = asyncio.Event()
        await self._stop.wait()
        server.close()
        # End the links here, in their loop: left pending, they would be torn down
        # after the loop closed, each with a warning.
        links = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def _link(self, reader, writer) -> None:
        if self._refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)
        self._links += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self, outage_s: float) -> None:
        async def _cut():
            self._refusing = True
            for writer in self._links:
                # shutdown, not just close: forked service processes inherit these
                # sockets, and a close in this process alone would send nothing.
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                writer.transport.abort()
            self._links.clear()
            await asyncio.sleep(outage_s)
            self._refusing = False

        asyncio.run_coroutine_threadsafe(_cut(), self._loop).result(10)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_no_confirmed_message_is_lost_when_the_broker_connection_drops():
    proxy = CuttableProxy()
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    queue = f"lab.{uuid.uuid4().hex}.loss-test"

    def declare(channel):
        channel.queue_declare(queue, arguments={"x-expires": 60_000})

    received: list[str] = []
    loop = ConsumerLoop(
        url,
        queue,
        lambda d: (received.append(d.message_id), DeliveryOutcome.ACK)[1],
        declare=declare,
        name="loss-consumer",
    )
    thread = start_thread(loop)
    publisher = Publisher(url, declare=declare, retry_deadline_s=20)
    confirmed: list[str] = []
    try:
        assert loop.subscribed.wait(10)
        for i in range(150):
            if i in (50, 100):
                proxy.cut(outage_s=0.7)
            message_id = f"m{i}"
            publisher.publish("", queue, {"n": i}, message_id=message_id)
            confirmed.append(message_id)
        give_up = time.monotonic() + 20
        while not set(confirmed) <= set(received) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert set(confirmed) <= set(received), sorted(set(confirmed) - set(received))[:10]
        assert publisher.stats.reconnects >= 1 and loop.stats.reconnects >= 1
    finally:
        loop.stop.set()
        thread.join(5)
        publisher.close()
        proxy.close()
        delete_objects(AMQP_URL, queues=[queue])


def test_stop_runs_the_teardown_and_leaves_no_queue_or_exchange_behind(new_sandbox):
    box = new_sandbox("async-messaging")
    box.run("sync-vs-async", {"orders": 1, "email_fault": "none", "slow_ms": 500})
    assert broker_has(box.prefix + "email")
    assert box.stop()["state"] == "stopped"
    names = [box.prefix + q for q in config.queue_names()]
    assert not [n for n in names if broker_has(n)]
    assert not broker_has(box.prefix + config.EXCHANGE, "exchange")


def test_abandoned_queues_and_exchange_expire_on_their_own(monkeypatch):
    monkeypatch.setattr(config, "EXPIRES_MS", 1000)
    prefix = f"lab.{uuid.uuid4().hex}."
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        config.declare_all(connection.channel(), prefix)
    finally:
        connection.close()
    # Not polled meanwhile: a passive declare counts as use and renews the lease.
    time.sleep(3.5)
    assert not [q for q in config.queue_names() if broker_has(prefix + q)]
    # The exchange auto-deletes once its last binding went with the expired queues.
    assert not broker_has(prefix + config.EXCHANGE, "exchange")


def test_an_idle_publisher_keeps_its_connection_past_the_heartbeat_timeout():
    # The broker drops a connection after two missed heartbeats; the keeper answers them.
    # A 5 s heartbeat (the lab's is 30 s) keeps the test short.
    queue = f"lab.{uuid.uuid4().hex}.idle-test"

    def declare(channel):
        channel.queue_declare(queue, arguments={"x-expires": 60_000})

    publisher = Publisher(AMQP_URL, name="idle-test", declare=declare, heartbeat_s=5)
    try:
        publisher.connect()
        time.sleep(25)  # the broker gives up after 10 to 20 s of silence
        publisher.publish("", queue, {"n": 1}, message_id="after-idle")
        assert publisher.stats.reconnects == 0, publisher.stats.events
    finally:
        publisher.close()
        delete_objects(AMQP_URL, queues=[queue])


def test_trace_context_rides_in_headers_from_producer_to_consumer():
    from opentelemetry import trace
    from opentelemetry.instrumentation.pika import PikaInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    PikaInstrumentor().instrument(tracer_provider=provider)
    queue = f"lab.{uuid.uuid4().hex}.trace-test"

    def declare(channel):
        channel.queue_declare(queue, arguments={"x-expires": 60_000})

    seen = threading.Event()
    loop = ConsumerLoop(
        AMQP_URL, queue, lambda d: (seen.set(), DeliveryOutcome.ACK)[1], declare=declare
    )
    thread = start_thread(loop)
    publisher = Publisher(AMQP_URL, declare=declare)
    try:
        assert loop.subscribed.wait(10)
        with provider.get_tracer("test").start_as_current_span("place order") as root:
            publisher.publish("", queue, {"n": 1}, message_id="t1")
        assert seen.wait(10)
        time.sleep(0.2)
        spans = exporter.get_finished_spans()
        consumer = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
        assert consumer and consumer[0].context.trace_id == root.get_span_context().trace_id
    finally:
        loop.stop.set()
        thread.join(5)
        publisher.close()
        PikaInstrumentor().uninstrument()
        delete_objects(AMQP_URL, queues=[queue])


def test_store_counts_duplicates_only_without_idempotency(tmp_path: Path):
    store = ConsumerStore(tmp_path / "s.sqlite3")
    assert store.record_effect("a", 0, idempotent=True)
    assert not store.record_effect("a", 0, idempotent=True)
    assert store.record_effect("a", 0, idempotent=False)
    assert store.stats()["duplicates"] == 1 and store.stats()["distinct"] == 1
    store.close()


def test_a_run_through_a_broker_outage_loses_no_order_and_reports_the_reconnects():
    proxy = CuttableProxy()
    proxied = f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
    params = {"orders": 60, "email_fault": "none", "slow_ms": 500}
    try:
        # A host of its own, whose sandboxes reach RabbitMQ through the proxy only.
        with running_host(extra_env={"AMQP_URL": proxied}) as host:
            box = start_sandbox(host, "async-messaging")
            # Enough orders that the outage, and the reconnect after it, fall inside the
            # run: with 15 the run could end before the services had noticed and reconnected.
            outcome: list[dict] = []
            running = threading.Thread(
                target=lambda: outcome.append(box.run_reply("sync-vs-async", params))
            )
            running.start()
            time.sleep(0.4)
            proxy.cut(0.8)
            running.join(120)
            assert outcome, "the run did not answer within 120 s"
    finally:
        proxy.close()
    reply = outcome[0]
    assert reply["state"] == "done", reply
    result = reply["result"]
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert any("dropped" in note for note in result["notes"]), result["notes"]
    assert len(result["charts"][0]["series"][1]["values"]) == 3  # async orders all accepted
