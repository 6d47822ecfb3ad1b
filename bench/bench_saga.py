#!/usr/bin/env python3
"""Benchmark the Saga lesson on the real runtime: throughput and latency per mode, and a soak.

Both parts run on sandboxes of a real sandbox host (runtime/launcher.py): its
supervisor forks the five services, which speak real gRPC and real AMQP through
RabbitMQ, each on its own SQLite file. This process drives the sagas as the
experiments do (scenario.SagaDriver, over the services' gRPC ports) and reads
the results from the services' own stores.

1. Full path: the lesson's config (2 ms of simulated work per step).
   SAGAS_PER_MODE sagas per mode with no failures, closed loop with IN_FLIGHT
   sagas running at once (each client starts a saga, waits for its end, starts
   the next); before that, SAGAS_ALONE sagas one at a time for the latency of a
   lone saga. Sagas per second = sagas / wall time; p50/p99 latency per saga
   from the services' own records (orders: created to final; coordinator:
   started to final). The services trace as they do in the lab; this client
   starts no trace of its own.
2. Soak: batches of SOAK_BATCH sagas per mode, each step failing with
   SOAK_FAILURE_PROBABILITY (refusal, error or timeout), SOAK_DUPLICATES of them
   with every message or command sent twice; during each batch one service is
   broken as a learner could break it: SIGKILLed and started again, delayed past
   the coordinator's deadline (lost replies), or failing half its calls. No
   simulated work (step_work_s 0), so the soak measures the saga machinery.
   It stops at SOAK_SAGAS per mode or at the time budget, and prints the
   invariant violations, which must be 0.

Prints lines "name: value unit".
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Database 1, as the tests and the other benchmarks: never a development lab's.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("LAB_KEEPALIVE_SECONDS", "5")
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-bench"))

from sandbox_services.runtime import client  # noqa: E402
from sandbox_services.runtime.launcher import LaunchedHost, running_host  # noqa: E402
from sandbox_services.saga import LAB, invariants, scenario  # noqa: E402
from sandbox_services.saga.interface import MODES, FaultPlan, Order  # noqa: E402
from sandbox_services.saga.knobs import SagaConfig  # noqa: E402

SAGAS_PER_MODE = 200
SAGAS_ALONE = 30  # one at a time: the latency of a saga with nothing else in flight
IN_FLIGHT = 16
# The soak stops early (and says so) past this many seconds, so `make bench` stays bounded.
SOAK_BUDGET_S = 150.0
SOAK_SAGAS = 2_500  # per mode, at most
SOAK_BATCH = 250
SOAK_FAILURE_PROBABILITY = 0.1
SOAK_DUPLICATES = 0.1
SOAK_SETTINGS = {"step_work_s": 0.0}
# A broken service stays broken this long, starting this far into its batch.
FAULT_WINDOW_S = 0.5
FAULT_AT_S = (0.0, 0.5)
LATE_REPLY_DELAY_MS = 600
SERVICES = {
    "choreography": ("orders", "payments", "inventory", "shipping"),
    "orchestration": ("coordinator", "payments", "inventory", "shipping"),
}


class BenchSandbox:
    """One saga sandbox of the host: its ports, directory and the learner's controls."""

    def __init__(self, host: LaunchedHost, settings: dict | None = None) -> None:
        self.host = host
        self.id, reply = host.spawn("saga", timeout_s=60, settings=settings)
        self.ports = {name: entry["port"] for name, entry in reply["services"].items()}
        self.workdir = host.workdir / self.id
        self.settings = {**LAB.settings, **(settings or {})}

    def context(self) -> SimpleNamespace:
        """Return what ``scenario.SagaDriver`` reads of an experiment's ctx."""
        return SimpleNamespace(
            sandbox_id=self.id,
            prefix=f"lab.{self.id}.",
            workdir=self.workdir,
            amqp_url=self.host.config.amqp_url,
            settings=self.settings,
            address=lambda service: f"127.0.0.1:{self.ports[service]}",
        )

    def control(self, op: str, service: str, **params) -> dict:
        """Change a service as a learner's fault would; return every service's state."""
        reply = client.command(self.id, "service", service=service, op=op, timeout_s=60, **params)
        return reply["services"]

    def stop(self) -> None:
        """Stop the sandbox; its teardown deletes its broker objects."""
        client.command(self.id, "stop", timeout_s=30)


async def full_path(host: LaunchedHost) -> None:
    """Run sagas through the live services: alone (latency), then IN_FLIGHT at once (rate)."""
    sandbox = BenchSandbox(host)
    try:
        driver = scenario.SagaDriver(sandbox.context(), "batch")
        try:
            for mode in MODES:
                _, latencies, _ = await _closed_loop(driver, sandbox.workdir, mode, SAGAS_ALONE, 1)
                print(f"saga {mode} p50 latency alone: {_p(latencies, 0.5):.1f} ms")
                rate, latencies, running = await _closed_loop(
                    driver, sandbox.workdir, mode, SAGAS_PER_MODE, IN_FLIGHT
                )
                print(f"saga {mode} sagas per second: {rate:.1f} sagas/s")
                print(f"saga {mode} p50 latency: {_p(latencies, 0.5):.1f} ms")
                print(f"saga {mode} p99 latency: {_p(latencies, 0.99):.1f} ms")
                print(f"saga {mode} still running: {running} sagas")
        finally:
            await driver.close()
    finally:
        sandbox.stop()


async def _closed_loop(
    driver: scenario.SagaDriver, workdir: Path, mode: str, count: int, in_flight: int
) -> tuple[float, list[float], int]:
    """Run ``count`` sagas, ``in_flight`` at a time; return rate, latencies, still running."""
    orders = [scenario.new_order(driver.config) for _ in range(count)]
    queue, waiter, stop = list(orders), Waiter(driver, mode), asyncio.Event()
    polling = asyncio.create_task(waiter.poll(stop))
    started = time.monotonic()
    clients = (_client(driver, waiter, mode, queue) for _ in range(in_flight))
    await asyncio.wait_for(asyncio.gather(*clients), driver.remaining_s())
    elapsed = time.monotonic() - started
    stop.set()
    await polling
    ids = [order.saga_id for order in orders]
    running = await driver.wait(mode, ids)
    return count / elapsed, scenario.latencies_ms(workdir, mode, ids), len(running)


def _p(values: list[float], fraction: float) -> float:
    return scenario.percentile(values, fraction)


class Waiter:
    """Poll the live sagas in one call every POLL_S, so 16 clients do not poll 16 times."""

    POLL_S = 0.02

    def __init__(self, driver: scenario.SagaDriver, mode: str) -> None:
        self.driver = driver
        self.mode = mode
        self.waiting: dict[str, asyncio.Event] = {}

    async def until_ended(self, saga_id: str) -> None:
        """Return once the saga has ended."""
        event = self.waiting.setdefault(saga_id, asyncio.Event())
        await event.wait()

    async def poll(self, stop: asyncio.Event) -> None:
        """Wake the clients whose sagas ended, until told to stop."""
        while not stop.is_set():
            ids = list(self.waiting)
            if ids:
                pending = set(await self.driver.unfinished(self.mode, ids))
                for saga_id in ids:
                    if saga_id not in pending:
                        self.waiting.pop(saga_id).set()
            await asyncio.sleep(self.POLL_S)


async def _client(
    driver: scenario.SagaDriver, waiter: Waiter, mode: str, queue: list[Order]
) -> None:
    """Run sagas one after another until the queue is empty (one closed-loop client)."""
    while queue:
        order = queue.pop()
        await driver.start(mode, order)
        await waiter.until_ended(order.saga_id)


def soak_orders(rng: random.Random, config: SagaConfig, count: int) -> list[Order]:
    """Return ``count`` orders, each failing at a random step with the soak's probability."""
    orders = []
    for _ in range(count):
        plan = scenario.random_plan(rng, SOAK_FAILURE_PROBABILITY, "mixed")
        plan = FaultPlan(
            fail_at=plan.fail_at,
            fail_kind=plan.fail_kind,
            duplicate=rng.random() < SOAK_DUPLICATES,
        )
        orders.append(
            scenario.new_order(
                config,
                plan,
                rng=rng,
                quantity=rng.randint(1, 3),
                amount_cents=rng.randint(100, 50_000),
            )
        )
    return orders


async def break_one(sandbox: BenchSandbox, rng: random.Random, mode: str) -> str:
    """Break a random service for FAULT_WINDOW_S, as a learner could; return what was done."""
    service, fault = rng.choice(SERVICES[mode]), rng.choice(("kill", "delay", "error"))
    await asyncio.sleep(rng.uniform(*FAULT_AT_S))
    if fault == "kill":
        await asyncio.to_thread(sandbox.control, "kill", service)
    elif fault == "delay":
        await asyncio.to_thread(sandbox.control, "delay", service, delay_ms=LATE_REPLY_DELAY_MS)
    else:
        await asyncio.to_thread(sandbox.control, "error", service, error_rate=0.5)
    await asyncio.sleep(FAULT_WINDOW_S)
    await asyncio.to_thread(sandbox.control, "start" if fault == "kill" else "clear", service)
    return fault


async def soak(host: LaunchedHost) -> None:
    """Run the soak per mode on a sandbox of its own; print outcomes and invariant violations."""
    sandbox = BenchSandbox(host, SOAK_SETTINGS)
    rng = random.Random(42)
    config = SagaConfig.from_settings(sandbox.settings)
    violations = 0
    deadline = time.monotonic() + SOAK_BUDGET_S
    try:
        for mode in MODES:
            mode_deadline = time.monotonic() + (deadline - time.monotonic()) / (
                len(MODES) - MODES.index(mode)
            )
            started = time.monotonic()
            ids: list[str] = []
            faults: dict[str, int] = {"kill": 0, "delay": 0, "error": 0}
            while len(ids) < SOAK_SAGAS:
                if time.monotonic() > mode_deadline:
                    print(f"  soak {mode} stopped early at its share of the time budget")
                    break
                orders = soak_orders(rng, config, SOAK_BATCH)
                ids += [order.saga_id for order in orders]
                driver = scenario.SagaDriver(sandbox.context(), "batch")
                try:
                    breaking = asyncio.ensure_future(break_one(sandbox, rng, mode))
                    await driver.run(mode, orders)
                    faults[await breaking] += 1
                finally:
                    await driver.close()
            # Sagas stalled behind a fault finish once it is gone: give them their time.
            driver = scenario.SagaDriver(sandbox.context(), "batch")
            try:
                running = await driver.wait(mode, ids)
            finally:
                await driver.close()
            elapsed = time.monotonic() - started
            checks = invariants.check(sandbox.workdir, ids, mode=mode)
            failed = [check for check in checks if not check["ok"]]
            violations += len(failed)
            counts = scenario.outcome_counts(sandbox.workdir, ids)
            print(f"soak {mode} sagas: {len(ids)} sagas")
            print(f"soak {mode} approved: {counts['approved']} sagas")
            print(f"soak {mode} rejected: {counts['rejected']} sagas")
            print(f"soak {mode} still running: {len(running)} sagas")
            print(f"soak {mode} services killed: {faults['kill']} times")
            print(f"soak {mode} services delayed: {faults['delay']} times")
            print(f"soak {mode} services failing: {faults['error']} times")
            print(f"soak {mode} rate: {len(ids) / elapsed:.0f} sagas/s")
            for check in failed:
                print(f"  VIOLATED {mode}: {check['name']}: {check['detail']}")
    finally:
        sandbox.stop()
    print(
        "soak path: the real services of a sandbox (host, supervisor, forked processes), real"
        " gRPC and RabbitMQ; one service killed, delayed or failing during each batch"
    )
    print(f"soak invariant violations: {violations} violations")


def main() -> None:
    """Start a sandbox host; run the full-path benchmark, then the soak; end the host."""
    # The host in this process's session: Linux's autogroup scheduler shares the CPU
    # between sessions, so the services and this client get it as one group. Its log
    # goes to a file: its timestamps would read as figures ("22: 19 ...") here.
    log_path = Path(os.environ["LAB_WORKDIR"]) / "bench-saga-host.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_path, "ab") as log,
        running_host(own_session=False, stdout=log, stderr=log) as host,
    ):
        asyncio.run(full_path(host))
        asyncio.run(soak(host))


if __name__ == "__main__":
    main()
