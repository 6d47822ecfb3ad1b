#!/usr/bin/env python3
"""Benchmark the Saga lesson: throughput and latency per mode, and a 10,000-saga soak.

1. Full path: the five services as real processes, real gRPC and RabbitMQ, the
   lesson's config (2 ms of simulated work per step). SAGAS_PER_MODE sagas per
   mode with no failures, closed loop with IN_FLIGHT sagas running at once (each
   client starts a saga, waits for its end, starts the next); before that,
   SAGAS_ALONE sagas one at a time for the latency of a lone saga. Sagas per second =
   sagas / wall time; p50/p99 latency per saga from the services' own records
   (orders: created to final; coordinator: started to final). Spans get real ids
   but are not exported (the local harness has no exporter).
2. Soak: SOAK_SAGAS sagas per mode with a random failure per step (refusal,
   error or timeout), random duplicate deliveries, reordering, lost replies and
   crashes, through the real backends, outbox, reactions, coordinator and saga
   log on real SQLite files, in one process with an in-memory wire (see
   sandbox_services/saga/inprocess.py): the full broker path does not fit a
   10,000-saga soak in the time limit on 2 shared cores. Prints the invariant
   violations, which must be 0.

Prints lines "name: value unit".
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox_services.saga import invariants, scenario
from sandbox_services.saga.knobs import SagaConfig
from sandbox_services.saga.local import LocalSandbox
from sandbox_services.saga.inprocess import Chaos, ChoreographyWorld, OrchestrationWorld
from sandbox_services.saga.interface import MODES, FaultPlan, Order

SAGAS_PER_MODE = 200
SAGAS_ALONE = 30  # one at a time: the latency of a saga with nothing else in flight
IN_FLIGHT = 16
# The soak stops early (and says so) past this many seconds, so `make bench` stays bounded.
SOAK_BUDGET_S = 200.0
SOAK_SAGAS = 5_000  # per mode: 10,000 in all
SOAK_FAILURE_PROBABILITY = 0.1
SOAK_BATCH = 500
SOAK_CONFIG = SagaConfig(
    step_work_s=0.0, participant_budget_s=0.0, retry_backoff_s=0.0, crash_pause_s=0.0
)


async def full_path(workdir: Path) -> None:
    """Run sagas through the live services: alone (latency), then IN_FLIGHT at once (rate)."""
    sandbox = LocalSandbox(workdir)
    try:
        await sandbox.start_all()
        driver = scenario.SagaDriver(sandbox.experiment_context(), "batch")
        try:
            for mode in MODES:
                _, latencies, _ = await _closed_loop(driver, workdir, mode, SAGAS_ALONE, 1)
                print(f"saga {mode} p50 latency alone: {_p(latencies, 0.5):.1f} ms")
                rate, latencies, running = await _closed_loop(
                    driver, workdir, mode, SAGAS_PER_MODE, IN_FLIGHT
                )
                print(f"saga {mode} sagas per second: {rate:.1f} sagas/s")
                print(f"saga {mode} p50 latency: {_p(latencies, 0.5):.1f} ms")
                print(f"saga {mode} p99 latency: {_p(latencies, 0.99):.1f} ms")
                print(f"saga {mode} still running: {running} sagas")
        finally:
            await driver.close()
    finally:
        sandbox.close()


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


def soak_orders(rng: random.Random, count: int) -> list[Order]:
    """Return ``count`` orders, each failing at a random step with the soak's probability."""
    kinds = ("refusal", "error", "timeout")
    config = SagaConfig()
    return [
        scenario.new_order(
            config,
            _plan(rng, kinds),
            rng=rng,
            quantity=rng.randint(1, 3),
            amount_cents=rng.randint(100, 50_000),
        )
        for _ in range(count)
    ]


def _plan(rng: random.Random, kinds: tuple[str, ...]) -> FaultPlan:
    plan = scenario.random_plan(rng, SOAK_FAILURE_PROBABILITY, "mixed")
    return FaultPlan(fail_at=plan.fail_at, fail_kind=plan.fail_kind, duplicate=rng.random() < 0.1)


def soak(workdir: Path) -> None:
    """Run SOAK_SAGAS sagas per mode with chaos; print outcomes and invariant violations."""
    rng = random.Random(42)
    violations = 0
    deadline = time.monotonic() + SOAK_BUDGET_S
    for mode in MODES:
        directory = workdir / f"soak-{mode}"
        directory.mkdir()
        started = time.monotonic()
        ids: list[str] = []
        for batch in range(SOAK_SAGAS // SOAK_BATCH):
            if time.monotonic() > deadline:
                print(f"  soak {mode} stopped early at the time budget ({SOAK_BUDGET_S:.0f} s)")
                break
            orders = soak_orders(rng, SOAK_BATCH)
            ids += [order.saga_id for order in orders]
            if mode == "choreography":
                world = ChoreographyWorld(
                    directory, SOAK_CONFIG, Chaos(duplicate=0.05, reorder=True, crash=0.01), batch
                )
                for order in orders:
                    world.place(order)
                world.run()
            else:
                world = OrchestrationWorld(
                    directory,
                    SOAK_CONFIG,
                    Chaos(duplicate=0.05, crash=0.002, lost_reply=0.02),
                    batch,
                )
                asyncio.run(world.run(orders))
            world.close()
        elapsed = time.monotonic() - started
        checks = invariants.check(directory, ids, mode=mode)
        failed = [check for check in checks if not check["ok"]]
        violations += len(failed)
        counts = scenario.outcome_counts(directory, ids)
        print(f"soak {mode} sagas: {len(ids)} sagas")
        print(f"soak {mode} approved: {counts['approved']} sagas")
        print(f"soak {mode} rejected: {counts['rejected']} sagas")
        print(f"soak {mode} still running: {counts['running']} sagas")
        print(f"soak {mode} rate: {len(ids) / elapsed:.0f} sagas/s")
        for check in failed:
            print(f"  VIOLATED {mode}: {check['name']}: {check['detail']}")
    print(
        "soak path: real backends, outbox, reactions, coordinator and saga log on real SQLite"
        f" files under {workdir}; in-memory wire with duplicates, reordering, lost replies"
        " and crashes"
    )
    print(f"soak invariant violations: {violations} violations")


def main() -> None:
    """Run the full-path benchmark, then the soak."""
    with tempfile.TemporaryDirectory(prefix="bench-saga-") as directory:
        asyncio.run(full_path(Path(directory) / "live"))
    # tmpfs when there is one: the soak measures the saga logic, not the disk's checkpoints.
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bench-saga-soak-", dir=shm) as directory:
        soak(Path(directory))


if __name__ == "__main__":
    main()
