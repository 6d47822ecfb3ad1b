"""The aggregate service: check a command against current state, append, then update.

RabbitMQ streams have no conditional append ("only if the log is still at
offset N"), so this service is the single writer of the log and serialises
appends itself: the version check and the append happen under one lock. That
is the single-writer principle; a database-backed event store would do the
same check in a transaction.
"""

from __future__ import annotations

import asyncio
import random
import time

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from sandbox_services.event_sourcing.domain import (
    SCHEMA,
    Account,
    Command,
    ConcurrencyConflict,
    DomainError,
    Event,
    decide,
    evolve,
    fold,
)
from sandbox_services.broker.publisher import AsyncPublisher
from sandbox_services.broker.stream import read_stream

tracer = trace.get_tracer(__name__)


class AccountBackend:
    def __init__(
        self, *, publisher: AsyncPublisher, exchange: str, amqp_url: str, stream: str
    ) -> None:
        self._publisher = publisher
        self._exchange = exchange
        self._amqp_url = amqp_url
        self._stream = stream
        self._accounts: dict[str, Account] = {}
        self._head = 0
        self._lock = asyncio.Lock()
        self.on_append = lambda: None
        # The event shape this writer appends: 2 (today's), or 1 to play the first
        # release that wrote BalanceChanged events (the upcasting experiment).
        self.writer_schema = SCHEMA

    async def recover(self) -> int:
        """Rebuild every account from the log (the system of record); return events read."""
        with tracer.start_as_current_span("recover state from the log") as span:
            events = await asyncio.to_thread(
                lambda: [
                    (offset, event)
                    for offset, event, _ in read_stream(self._amqp_url, self._stream, idle_s=0.5)
                ]
            )
            for _offset, data in events:
                event = Event.from_dict(data)
                account = self._accounts.get(event.account_id, Account(event.account_id))
                if event.version > account.version:  # else a duplicated append: skip it
                    self._accounts[event.account_id] = evolve(account, event)
                    self._head += 1
            span.set_attribute("events", len(events))
        return len(events)

    async def execute(self, command: Command) -> Event:
        """Decide one command against the current state and append its event."""
        async with self._lock:
            account = self._accounts.get(command.account_id, Account(command.account_id))
            # Notice: the expected_version check and the append are one critical section.
            event = decide(account, command)
            event.meta = {"seq": self._head, "at": time.time()}
            await self._publisher.publish(
                self._exchange,
                "",
                event.as_dict() if self.writer_schema == SCHEMA else event.as_v1(),
                message_id=f"{event.account_id}:{event.version}",
            )
            self._accounts[command.account_id] = evolve(account, event)
            self._head += 1
            self.on_append()
            return event

    async def account(self, account_id: str, *, as_of: int | None = None) -> Account:
        """Return the account now, or rebuilt from the log up to version ``as_of``."""
        current = self._accounts.get(account_id, Account(account_id))
        if as_of is None:
            return current
        if not 0 <= as_of <= current.version:
            raise DomainError(f"as_of: must be in 0..{current.version} for account {account_id}")
        if as_of == 0:
            return Account(account_id)
        with tracer.start_as_current_span("rebuild from the log") as span:
            span.set_attributes({"account_id": account_id, "as_of": as_of})
            events = await asyncio.to_thread(self._history, account_id, as_of)
            span.set_attribute("events_read", events[1])
        return fold(account_id, events[0])

    def _history(self, account_id: str, as_of: int) -> tuple[list[Event], int]:
        mine: list[Event] = []
        read = 0
        for _, data, _ in read_stream(
            self._amqp_url,
            self._stream,
            until=lambda _o, e: e["account_id"] == account_id and e["version"] >= as_of,
        ):
            read += 1
            if data["account_id"] == account_id:
                mine.append(Event.from_dict(data))
        return mine, read

    async def head(self) -> int:
        """Return how many distinct events the log holds.

        A publish re-sent after a lost confirm may have put an event in the stream
        twice, so this count, not the stream's offsets, is what views compare with.
        """
        return self._head

    async def load(self, *, commands: int, accounts: int, seed: int) -> dict:
        """Append a random but valid history: opens, then deposits and withdrawals."""
        rng = random.Random(seed)
        names = [f"acct-{seed}-{i}" for i in range(accounts)]
        appended = refused = 0
        for name in names:
            if not self._accounts.get(name, Account(name)).opened:
                await self.execute(Command(name, "open"))
                appended += 1
        # One span for the whole load: thousands of traced appends would bury the lesson.
        with tracer.start_as_current_span("load history") as span, suppress_instrumentation():
            while appended < commands:
                name = rng.choice(names)
                kind = rng.choice(("deposit", "deposit", "withdraw"))
                try:
                    await self.execute(Command(name, kind, rng.randint(1, 500)))
                    appended += 1
                except DomainError:
                    refused += 1  # a withdrawal beyond the balance: no event
            span.set_attribute("events", appended)
        return {"appended": appended, "refused": refused, "accounts": names}


__all__ = ["AccountBackend", "ConcurrencyConflict", "DomainError"]
