"""Run the real saga code in one process, with a broker and a crash you can script.

The backends, their SQLite files, the outbox, the event reactions and the
coordinator with its saga log are exactly the code the services run; only the
wire is replaced: a list of deliveries stands in for RabbitMQ, a direct call for
gRPC. That lets the property tests and the soak drive thousands of sagas with
duplicates, reordering, lost replies and crashes, and check the invariants on
the very same stores.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from pathlib import Path

from sandbox_services.saga.knobs import SagaConfig

from sandbox_services.saga.services.participant import outbox
from sandbox_services.saga.services.participant.backend import ParticipantBackend
from sandbox_services.saga.choreography import subscriptions
from sandbox_services.saga.services.coordinator.backend import SagaCoordinator
from sandbox_services.saga.interface import SERVICES, Order, StepResult, StepTimeout
from sandbox_services.saga.services.inventory.backend import InventoryBackend
from sandbox_services.saga.services.orders.backend import OrdersBackend
from sandbox_services.saga.services.payments.backend import PaymentsBackend
from sandbox_services.saga.services.shipping.backend import ShippingBackend
from sandbox_services.saga.services.participant.reactions import handle_event
from sandbox_services.saga.services.coordinator.saga_log import SagaLog
from sandbox_services.saga.store import database_path, transaction


@dataclass(frozen=True)
class Chaos:
    """What goes wrong on the simulated wire (each a probability per delivery or call)."""

    duplicate: float = 0.0  # a delivery (or command) arrives twice
    reorder: bool = False  # deliveries are taken in random order, not FIFO
    crash: float = 0.0  # the process dies right after its commit (before ack/reply)
    lost_reply: float = 0.0  # orchestration: the step applied, the reply never came
    max_crashes: int = 50


class SimulatedCrash(BaseException):
    """The process died: nothing after this point in the process runs."""


def open_backends(workdir: Path, config: SagaConfig) -> dict[str, ParticipantBackend]:
    """Open every participant's store in ``workdir``."""
    classes = (OrdersBackend, PaymentsBackend, InventoryBackend, ShippingBackend)
    return {cls.service: cls.open(workdir, config) for cls in classes}


class ChoreographyWorld:
    """Four participants reacting to each other's events through an in-memory broker."""

    def __init__(self, workdir: Path, config: SagaConfig, chaos: Chaos, seed: int) -> None:
        self.config = config
        self.chaos = chaos
        self.rng = random.Random(seed)
        self.backends = open_backends(workdir, config)
        self.queues: dict[str, list[dict]] = {service: [] for service in SERVICES}
        self.crashes = 0
        self.subscribers = {service: set(subscriptions(service)) for service in SERVICES}
        # Services whose outbox may hold unpublished rows (re-checked before relaying).
        self.dirty = set(SERVICES)

    def place(self, order: Order) -> StepResult:
        """Start a saga as Orders.PlaceOrder does: the order and OrderCreated in one commit."""
        self.dirty.add("orders")
        return self.backends["orders"].execute("create", order, emit=True)

    def run(self, max_steps: int = 10_000_000) -> int:
        """Relay and deliver until nothing is left to do; return the steps taken."""
        for steps in range(max_steps):
            busy = [s for s in SERVICES if self.queues[s] or s in self.dirty]
            if not busy:
                return steps
            service = self.rng.choice(busy)
            relay = service in self.dirty and (not self.queues[service] or self.rng.random() < 0.5)
            if relay:
                self._relay(service)
            else:
                self._deliver(service)
        raise RuntimeError("choreography did not settle")

    def close(self) -> None:
        """Close every store."""
        for backend in self.backends.values():
            backend.close()

    def _relay(self, service: str) -> None:
        backend = self.backends[service]
        with backend.lock:
            rows = outbox.pending(backend.conn, self.config.relay_batch)
        for row in rows:
            body = json.loads(row["body"])
            copies = 2 if row["duplicate"] or self.rng.random() < self.chaos.duplicate else 1
            for target in SERVICES:
                if body["event"] in self.subscribers[target]:
                    self.queues[target].extend([body] * copies)
        if not rows:
            self.dirty.discard(service)
            return
        if self._crash():
            return  # died between publish and mark: the rows go out again later
        with backend.lock, transaction(backend.conn):
            outbox.mark_published(backend.conn, [row["id"] for row in rows])

    def _deliver(self, service: str) -> None:
        queue = self.queues[service]
        index = self.rng.randrange(len(queue)) if self.chaos.reorder else 0
        handle_event(self.backends[service], queue[index], config=self.config)
        self.dirty.add(service)
        if self._crash():
            return  # died after the commit, before the ack: the broker redelivers
        queue.pop(index)

    def _crash(self) -> bool:
        if self.crashes < self.chaos.max_crashes and self.rng.random() < self.chaos.crash:
            self.crashes += 1
            return True
        return False


class _DirectParticipant:
    """A participant called directly, with the chaos of a real network and real crashes."""

    def __init__(self, world: OrchestrationWorld, backend: ParticipantBackend) -> None:
        self.world = world
        self.backend = backend

    async def execute(self, action: str, order: Order, *, attempt: int = 1) -> StepResult:
        world = self.world
        world.check_alive()
        await asyncio.sleep(0)  # let other sagas interleave, as they would over the wire
        # budget 0: a scripted timeout gives up at once instead of sleeping.
        result = self.backend.execute(action, order, budget_s=0.0)
        if world.rng.random() < world.chaos.duplicate:
            self.backend.execute(action, order, budget_s=0.0)
        world.maybe_crash()
        if world.rng.random() < world.chaos.lost_reply:
            raise StepTimeout(f"{action}: reply lost")
        return result


class OrchestrationWorld:
    """The coordinator and four participants in one process; the coordinator can be 'killed'."""

    def __init__(self, workdir: Path, config: SagaConfig, chaos: Chaos, seed: int) -> None:
        self.workdir = Path(workdir)
        self.config = config
        self.chaos = chaos
        self.rng = random.Random(seed)
        self.backends = open_backends(workdir, config)
        self.participants = {s: _DirectParticipant(self, b) for s, b in self.backends.items()}
        self.crashes = 0
        self.dead = False

    def check_alive(self) -> None:
        """Raise SimulatedCrash in every saga task once the coordinator 'died'."""
        if self.dead:
            raise SimulatedCrash()

    def maybe_crash(self) -> None:
        """Kill the coordinator now, with the chaos probability."""
        if self.crashes < self.chaos.max_crashes and self.rng.random() < self.chaos.crash:
            self.crashes += 1
            self.dead = True
            raise SimulatedCrash()

    async def run(self, orders: list[Order]) -> int:
        """Run every saga to its end across as many coordinator restarts as it takes."""
        restarts = 0
        coordinator = self._new_coordinator()
        for order in orders:
            await coordinator.start(order)
        while True:
            await coordinator.drain()
            coordinator.log.close()
            if not self.dead:
                return restarts
            # A new process: fresh memory, the same log file.
            self.dead = False
            restarts += 1
            coordinator = self._new_coordinator()
            coordinator.resume_all()

    def _new_coordinator(self) -> SagaCoordinator:
        saga_log = SagaLog(database_path(self.workdir, "coordinator"))
        return SagaCoordinator(saga_log, self.participants, self.config, sleep=_no_sleep)

    def close(self) -> None:
        """Close every store."""
        for backend in self.backends.values():
            backend.close()


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)
