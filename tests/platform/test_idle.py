"""An idle sandbox costs nothing but its heartbeat: gauges sample only while someone watches.

On the real runtime: a sandbox of the runtime's own test lab (whose metrics hook
counts its polls) and a real GaugeReporter against Redis.
"""

import asyncio
import os
import re
import subprocess
import time
import uuid

import redis
from channels_redis.core import RedisChannelLayer

from sandbox_services.broker.gauges import INFLIGHT_TTL_S, GaugeReporter
from sandbox_services.rest_vs_grpc.services.catalog.backend import PriceTicker
from sandbox_services.runtime import client, keys
from sandbox_services.runtime.hooks import METRICS_REPEAT_S
from sandbox_services.runtime.supervisor import HEARTBEAT_INTERVAL_S, METRICS_LINGER_S

from .helpers import pid_alive
from tests.sandboxes import wait_until


def test_the_lab_metrics_process_runs_only_while_a_browser_watches(new_sandbox):
    sandbox = new_sandbox("selftest")
    time.sleep(3 * HEARTBEAT_INTERVAL_S)  # several heartbeats with nobody watching
    assert sandbox.status()["metrics_pid"] is None

    client.watch(sandbox.id, "browser-1", 30)
    metrics_pid = wait_until(lambda: sandbox.status()["metrics_pid"], 5)
    assert pid_alive(metrics_pid)

    client.unwatch(sandbox.id, "browser-1")
    wait_until(
        lambda: sandbox.status()["metrics_pid"] is None, METRICS_LINGER_S + 4 * HEARTBEAT_INTERVAL_S
    )
    wait_until(lambda: not pid_alive(metrics_pid), 5)


def test_the_lab_metrics_process_runs_while_an_experiment_runs(new_sandbox):
    sandbox = new_sandbox("selftest")
    assert sandbox.status()["metrics_pid"] is None
    client.send(sandbox.id, "run", run_id="held", experiment="hold", params={"seconds": 8})
    # Nobody watches, but a run is in flight: its gauges are what the learner will read.
    assert wait_until(lambda: sandbox.status()["metrics_pid"], 10)


def test_an_idle_gauge_reporter_writes_nothing():
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    sandbox_id = uuid.uuid4().hex
    reporter = GaugeReporter(os.environ["REDIS_URL"], sandbox_id, "orders-0")
    reporter.start()
    unacked = keys.amqp_inflight(sandbox_id, "orders", "orders-0")
    try:
        reporter.add("orders", "published")
        reporter.inflight("orders", 1)
        wait_until(lambda: connection.get(unacked) == b"1", 5)
        assert connection.hget(keys.amqp_counts(sandbox_id), "orders|published") == b"1"
        reporter.inflight("orders", -1)
        wait_until(lambda: connection.get(unacked) == b"0", 5)
        # Nothing moves: nothing is written, and the zero gauge expires instead of being
        # refreshed twice a second for ever.
        wait_until(lambda: not connection.exists(unacked), INFLIGHT_TTL_S + 3)
        time.sleep(1.0)
        assert not connection.exists(unacked)
    finally:
        reporter.stop()
        connection.delete(keys.amqp_counts(sandbox_id), unacked)


def test_the_price_ticker_rests_while_nobody_streams_and_readers_see_it_as_ticking():
    ticker = PriceTicker("LAB", 0.01, 100_000_000)

    async def scenario() -> tuple[int, int, list[int]]:
        running = asyncio.create_task(ticker.run())
        await asyncio.sleep(0.3)
        computed_while_idle = ticker._sequence  # no reader, no watcher: no tick computed
        read = ticker.latest.sequence  # a poll sees the price as if it had ticked
        seen = []
        async for update in ticker.watch():
            seen.append(update.sequence)
            if len(seen) == 5:
                break
        running.cancel()
        return computed_while_idle, read, seen

    computed_while_idle, read, seen = asyncio.run(scenario())
    assert computed_while_idle == 1
    assert read >= 20
    assert seen == list(range(seen[0], seen[0] + 5)) and seen[0] >= read


def _heartbeats_of(sandbox_id: str) -> list[int]:
    """The heartbeat timeout RabbitMQ negotiated with each connection naming the sandbox."""
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_connections",
            "client_properties",
            "timeout",
            "--no-table-headers",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [
        int(re.search(r"\t(\d+)\s*$", line).group(1))
        for line in listed.splitlines()
        if f'"connection_name","lab.{sandbox_id}' in line
    ]


def test_an_idle_messaging_sandbox_keeps_its_amqp_connections_quiet(new_sandbox):
    # Each heartbeat frame wakes a service thread and the broker: at 5 s, the AMQP
    # threads of 45 idle messaging sandboxes kept the machine about 2 % busy.
    sandbox = new_sandbox("async-messaging")
    timeouts = wait_until(lambda: _heartbeats_of(sandbox.id) or None, 10)
    assert len(timeouts) >= 4, timeouts  # the orders publisher and three consumers
    assert all(timeout == 0 or timeout >= 30 for timeout in timeouts), timeouts


async def _lab_gauges(layer, channel: str, seconds: float) -> list[dict]:
    """The lab's gauges messages a watching page's channel receives within ``seconds``."""
    received = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await layer.receive(channel)
                if message["type"] == "sandbox.metrics" and message["source"] == "lab":
                    received.append(message["metrics"])
    except TimeoutError:
        return received


def test_an_idle_sandbox_sends_its_gauges_on_change_and_a_new_page_gets_them_at_once(new_sandbox):
    # Each message costs the supervisor, Redis and daphne a millisecond or two: a page
    # watching a sandbox that does nothing was sent the same gauges every second.
    sandbox = new_sandbox("async-messaging")

    async def scenario() -> tuple[list[dict], list[dict], list[dict]]:
        layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]])
        first, later = await layer.new_channel(), await layer.new_channel()
        await layer.group_add(keys.channel_group(sandbox.id), first)
        await asyncio.to_thread(client.watch, sandbox.id, first, 30)
        settling = await _lab_gauges(layer, first, 3.0)  # the gauges start and settle
        quiet = await _lab_gauges(layer, first, METRICS_REPEAT_S - 1.5)
        await layer.group_add(keys.channel_group(sandbox.id), later)
        await asyncio.to_thread(client.watch, sandbox.id, later, 30)
        joined = await _lab_gauges(layer, later, 1.0)
        return settling, quiet, joined

    settling, quiet, joined = asyncio.run(scenario())
    assert settling, "no gauges while watched"
    # Polled about once a second meanwhile, equal samples were not sent again.
    assert len(quiet) <= 1, quiet
    # The second page did not wait for a change or the repeat: the newest came at once.
    assert joined and joined[-1] == (quiet or settling)[-1]
