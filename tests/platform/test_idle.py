"""An idle sandbox costs nothing but its heartbeat: gauges sample only while someone watches.

On the real runtime: a sandbox of the runtime's own test lab (whose metrics hook
counts its polls) and a real GaugeReporter against Redis.
"""

import asyncio
import os
import time
import uuid

import redis

from sandbox_services.broker.gauges import INFLIGHT_TTL_S, GaugeReporter
from sandbox_services.rest_vs_grpc.services.catalog.backend import PriceTicker
from sandbox_services.runtime import client, keys
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
