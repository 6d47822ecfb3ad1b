"""The Protocol of the account service (domain types live in ``eventlog.domain``)."""

from __future__ import annotations

from typing import Protocol

from sandbox_services.event_sourcing.domain import Account, Command, Event


class AccountService(Protocol):
    async def execute(self, command: Command) -> Event:
        """Decide and append one event; raise DomainError or ConcurrencyConflict."""

    async def account(self, account_id: str, *, as_of: int | None = None) -> Account:
        """Return the account now, or rebuilt from the log up to version ``as_of``."""

    async def head(self) -> int:
        """Return how many events the log holds (the next offset)."""
