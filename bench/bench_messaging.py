#!/usr/bin/env python3
"""Benchmark the messaging lessons against bare pika on the same broker, in the same run.

1. Publish-to-consume latency and throughput: a confirmed publish per message to a
   topic exchange with three bound queues (email, audit, analytics), each consumed
   with manual acks and prefetch 10. "bare" is plain pika in the same topology;
   "lab" is the lesson's Publisher feeding the consumer services of a real sandbox
   (a sandbox host started by runtime/launcher.py, its supervisor and forked
   services: thread bridge to asyncio, SQLite effect store, gauges), work set to 0.
   Latency is measured on the email queue: from before the publish to the commit
   of the effect (lab) or to the callback (bare).
2. Replay: 100,000 events in a stream, read from offset 0 by the lesson's projector
   engine (balances view, batched SQLite commits) and by the bare stream reader.

Prints lines "name: value unit". Traffic is bounded: a few thousand messages, one
100k-event stream, all deleted at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Database 1, as the other benchmarks and the tests: never a development lab's.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "5")
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-bench"))

import pika  # noqa: E402

from sandbox_services.event_sourcing.services.projector.backend import ProjectorEngine  # noqa: E402
from sandbox_services.event_sourcing.services.projector.store import ProjectorStore  # noqa: E402
from sandbox_services.async_messaging import knobs as config  # noqa: E402
from sandbox_services.broker.naming import stream_arguments  # noqa: E402
from sandbox_services.broker.probes import percentile  # noqa: E402
from sandbox_services.broker.publisher import Publisher  # noqa: E402
from sandbox_services.broker.stream import read_stream  # noqa: E402
from sandbox_services.broker.sweeper import delete_objects  # noqa: E402
from sandbox_services.runtime import client  # noqa: E402
from sandbox_services.runtime.launcher import LaunchedHost, running_host  # noqa: E402

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
# Bare and lab runs alternate this many times; the best run of each is compared, so a
# burst of load from a neighbour on this shared machine hurts neither side alone.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
REPLAY_EVENTS = int(os.environ.get("BENCH_REPLAY_EVENTS", "100000"))
_fork = multiprocessing.get_context("fork")


def order_body(i: int) -> dict:
    return {
        "order_id": f"o{i}",
        "customer_email": "learner@example.com",
        "amount_cents": 100 + i,
        "crash_in": [],
    }


# --- bare pika -------------------------------------------------------------------------------
def bare_consumer(queue: str, expected: int, ready, out, store: str | None = None) -> None:
    # With a store, each message also commits one row, as the lab's consumers do.
    db = sqlite3.connect(store, isolation_level=None) if store else None
    if db is not None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE effects (message_id TEXT PRIMARY KEY, at REAL)")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=config.DEFAULT_PREFETCH)
    received: dict[str, float] = {}

    def on_message(ch, method, properties, body):
        json.loads(body)
        received[properties.message_id] = time.time()
        if db is not None:
            with db:
                db.execute(
                    "INSERT INTO effects VALUES (?, ?)", (properties.message_id, time.time())
                )
        ch.basic_ack(method.delivery_tag)
        if len(received) >= expected:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    ready.set()
    channel.start_consuming()
    connection.close()
    out.send(received)


def bare_run(n: int) -> tuple[dict[str, float], dict[str, float]]:
    prefix = f"lab.bench{uuid.uuid4().hex[:8]}."
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare(prefix + "orders", "topic", durable=True, auto_delete=True)
    for name in config.CONSUMERS:
        channel.queue_declare(prefix + name, durable=True, arguments={"x-expires": 600_000})
        channel.queue_bind(prefix + name, prefix + "orders", config.ROUTING_KEY)
    pipes, processes = [], []
    for name in config.CONSUMERS:
        ready = _fork.Event()
        parent, child = _fork.Pipe(duplex=False)
        process = _fork.Process(target=bare_consumer, args=(prefix + name, n, ready, child))
        process.start()
        ready.wait(10)
        pipes.append(parent)
        processes.append(process)
    channel.confirm_delivery()
    sent: dict[str, float] = {}
    for i in range(n):
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=f"o{i}", headers={}
        )
        sent[f"o{i}"] = time.time()
        channel.basic_publish(
            prefix + "orders",
            config.ROUTING_KEY,
            json.dumps(order_body(i)).encode(),
            properties,
            mandatory=True,
        )
    received = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join(10)
    connection.close()
    delete_objects(AMQP_URL, queues=[prefix + c for c in config.CONSUMERS])
    return sent, received[0]


# --- the lab ------------------------------------------------------------------------------
def _set_work_ms_zero(workdir: Path, consumer: str) -> None:
    # The consumer reads its simulated work from its own store's settings table.
    with closing(sqlite3.connect(workdir / f"{consumer}.sqlite3")) as db, db:
        db.execute("INSERT OR REPLACE INTO settings VALUES ('work_ms', '0')")


def _control(sandbox_id: str, op: str, service: str) -> None:
    client.command(sandbox_id, "service", service=service, op=op, timeout_s=30)


def lab_run(host: LaunchedHost, n: int) -> tuple[dict[str, float], dict[str, float]]:
    sandbox_id, _ = host.spawn("async-messaging", timeout_s=60)
    workdir = host.workdir / sandbox_id
    prefix = f"lab.{sandbox_id}."
    try:
        for name in config.CONSUMERS:
            _set_work_ms_zero(workdir, name)
        publisher = Publisher(AMQP_URL, declare=lambda ch: config.declare_all(ch, prefix))
        sent: dict[str, float] = {}
        for i in range(n):
            sent[f"o{i}"] = time.time()
            publisher.publish(
                prefix + config.EXCHANGE, config.ROUTING_KEY, order_body(i), message_id=f"o{i}"
            )
        publisher.close()
        email = workdir / "email.sqlite3"
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            with closing(sqlite3.connect(email)) as db, db:
                if db.execute("SELECT COUNT(*) FROM effects").fetchone()[0] >= n:
                    break
            time.sleep(0.1)
        with closing(sqlite3.connect(email)) as db, db:
            received = dict(
                db.execute("SELECT message_id, MIN(at) FROM effects GROUP BY message_id")
            )
        return sent, received
    finally:
        client.command(sandbox_id, "stop", timeout_s=30)  # its teardown deletes its queues


def figures_of(sent: dict[str, float], received: dict[str, float]) -> dict:
    latencies = [(received[k] - sent[k]) * 1000 for k in sent if k in received]
    elapsed = max(received.values()) - min(sent.values())
    return {
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "rate": round(len(received) / elapsed, 1),
        "lost": len(sent) - len(received),
    }


def report(label: str, figures: dict) -> None:
    print(f"{label}_publish_to_consume_p50: {figures['p50']} ms", flush=True)
    print(f"{label}_publish_to_consume_p99: {figures['p99']} ms", flush=True)
    print(f"{label}_throughput: {figures['rate']} msg/s", flush=True)
    print(f"{label}_lost: {figures['lost']} messages", flush=True)


# --- draining a backlog: what one consumer sustains -----------------------------------------
def publish_backlog(exchange: str, routing_key: str, n: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    for i in range(n - 1):
        properties = pika.BasicProperties(delivery_mode=2, message_id=f"d{i}", headers={})
        channel.basic_publish(exchange, routing_key, json.dumps(order_body(i)).encode(), properties)
    channel.confirm_delivery()  # the last one confirmed: the backlog is all in place
    properties = pika.BasicProperties(delivery_mode=2, message_id=f"d{n - 1}", headers={})
    channel.basic_publish(exchange, routing_key, json.dumps(order_body(n)).encode(), properties)
    connection.close()


def bare_drain(n: int, with_store: bool = False) -> float:
    """Return messages/s one bare pika consumer sustains on a backlog (first to last)."""
    queue = f"lab.bench{uuid.uuid4().hex[:8]}.drain"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    connection.channel().queue_declare(queue, durable=True, arguments={"x-expires": 600_000})
    connection.close()
    publish_backlog("", queue, n)
    ready = _fork.Event()
    parent, child = _fork.Pipe(duplex=False)
    store = str(Path(tempfile.mkdtemp(prefix="bench-bare-")) / "s.sqlite3") if with_store else None
    process = _fork.Process(target=bare_consumer, args=(queue, n, ready, child, store))
    process.start()
    received = parent.recv()
    process.join(10)
    delete_objects(AMQP_URL, queues=[queue])
    return (len(received) - 1) / (max(received.values()) - min(received.values()))


def lab_drain(host: LaunchedHost, n: int) -> float:
    """Return messages/s the email consumer service sustains on a backlog (first to last)."""
    sandbox_id, _ = host.spawn("async-messaging", timeout_s=60)
    workdir = host.workdir / sandbox_id
    try:
        _set_work_ms_zero(workdir, "email")
        for name in config.CONSUMERS:
            _control(sandbox_id, "stop", name)
        publish_backlog(f"lab.{sandbox_id}.{config.EXCHANGE}", config.ROUTING_KEY, n)
        _control(sandbox_id, "start", "email")
        email = workdir / "email.sqlite3"
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            with closing(sqlite3.connect(email)) as db, db:
                done, first, last = db.execute(
                    "SELECT COUNT(*), MIN(at), MAX(at) FROM effects"
                ).fetchone()
            if done >= n:
                return (done - 1) / (last - first)
            time.sleep(0.1)
        raise RuntimeError("the email consumer did not drain its backlog")
    finally:
        client.command(sandbox_id, "stop", timeout_s=30)


# --- replay ---------------------------------------------------------------------------------
def fill_stream(stream: str, n: int) -> int:
    """Append n events to a new stream as fast as one connection can; return its length."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.queue_declare(stream, durable=True, arguments=stream_arguments())
    kinds = ("Deposited", "Deposited", "Withdrawn")
    for i in range(n):
        event = {
            "account_id": f"acct-{i % 100}",
            "type": kinds[i % 3],
            "version": i // 100 + 1,
            "amount": 1 + i % 50,
            "meta": {"seq": i},
        }
        # The blocking channel flushes the socket after every publish; the bench only
        # sets the stage, so it queues frames on the underlying channel and flushes
        # every 500 (7x faster here). The lab's own publishers confirm each message.
        channel._impl.basic_publish(
            "", stream, json.dumps(event).encode(), pika.BasicProperties(message_id=str(i))
        )
        if i % 500 == 499:
            connection.process_data_events(time_limit=0)
    channel.confirm_delivery()  # one confirmed publish: everything before it is in the stream
    end = {"account_id": "end", "type": "End", "version": 1}
    channel.basic_publish("", stream, json.dumps(end).encode())
    connection.close()
    return n + 1


def replay_projector(stream: str, n: int) -> float:
    store = ProjectorStore(Path(tempfile.mkdtemp(prefix="bench-proj-")) / "p.sqlite3")
    engine = ProjectorEngine(
        amqp_url=AMQP_URL, stream=stream, store=store, batch=500, prefetch=1000, max_views=1
    )
    started = time.monotonic()
    thread = threading.Thread(target=engine.run, args=({"balances": "balances"},), daemon=True)
    thread.start()
    while engine.statuses() == [] or engine.statuses()[0].next_offset < n:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    engine.stop.set()
    thread.join(5)
    return n / elapsed


def replay_reader(stream: str, n: int) -> float:
    started = time.monotonic()
    count = sum(1 for _ in read_stream(AMQP_URL, stream, until=lambda o, _e: o >= n - 1))
    assert count == n, count
    return n / (time.monotonic() - started)


def main() -> None:
    """Start one sandbox host for the lab's side, run every measurement, end the host."""
    # The host stays in this session: Linux's autogroup shares the CPU between
    # sessions, and the bare side's consumers run in this one.
    with running_host(own_session=False, stderr=subprocess.DEVNULL) as host:
        measure(host)


def measure(host: LaunchedHost) -> None:
    """Print every figure: lab against bare pika, drain, replay."""
    print(f"messages: {MESSAGES} per run", flush=True)
    print(f"loadavg_1m_before: {os.getloadavg()[0]:.1f} processes", flush=True)
    runs: dict[str, list[dict]] = {"bare_pika": [], "lab": []}
    for round_number in range(1, ROUNDS + 1):
        for label, run in (("bare_pika", bare_run), ("lab", lambda n: lab_run(host, n))):
            figures = figures_of(*run(MESSAGES))
            runs[label].append(figures)
            report(f"{label}_round{round_number}", figures)
    best = {
        label: {
            "p50": min(r["p50"] for r in rs),
            "p99": min(r["p99"] for r in rs),
            "rate": max(r["rate"] for r in rs),
            "lost": sum(r["lost"] for r in rs),
        }
        for label, rs in runs.items()
    }
    report("bare_pika_best", best["bare_pika"])
    report("lab_best", best["lab"])
    bare, lab = best["bare_pika"], best["lab"]
    print(f"lab_vs_bare_throughput: {round(100 * lab['rate'] / bare['rate'], 1)} %", flush=True)
    print(f"lab_vs_bare_p50: {round(100 * lab['p50'] / max(bare['p50'], 1e-9), 1)} %", flush=True)
    drain_n = 2 * MESSAGES
    bare_rate, lab_rate = bare_drain(drain_n), lab_drain(host, drain_n)
    print(f"bare_pika_drain_{drain_n}: {round(bare_rate)} msg/s", flush=True)
    print(f"lab_drain_{drain_n}: {round(lab_rate)} msg/s", flush=True)
    print(f"lab_vs_bare_drain: {round(100 * lab_rate / bare_rate, 1)} %", flush=True)
    # Where the gap comes from: the same bare consumer, committing one SQLite row per message.
    print(
        f"bare_pika_with_sqlite_drain_{drain_n}: {round(bare_drain(drain_n, True))} msg/s",
        flush=True,
    )
    stream = f"lab.bench{uuid.uuid4().hex[:8]}.log"
    try:
        started = time.monotonic()
        total = fill_stream(stream, REPLAY_EVENTS)
        print(
            f"stream_fill_{REPLAY_EVENTS}: {round(REPLAY_EVENTS / (time.monotonic() - started))} events/s",
            flush=True,
        )
        print(
            f"replay_projector_{REPLAY_EVENTS}: {round(replay_projector(stream, total))} events/s",
            flush=True,
        )
        print(
            f"replay_reader_{REPLAY_EVENTS}: {round(replay_reader(stream, total))} events/s",
            flush=True,
        )
    finally:
        delete_objects(AMQP_URL, queues=[stream])
    print(f"loadavg_1m_after: {os.getloadavg()[0]:.1f} processes", flush=True)


if __name__ == "__main__":
    main()
