"""The account aggregate as two pure functions: decide (command -> event) and evolve (fold).

This is the whole of event sourcing in miniature: state is never stored, only
the events; the state is the left fold of ``evolve`` over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EventType = Literal["AccountOpened", "Deposited", "Withdrawn"]
CommandType = Literal["open", "deposit", "withdraw"]
COMMANDS: tuple[str, ...] = ("open", "deposit", "withdraw")
MAX_AMOUNT = 1_000_000
# The shape of the events this code writes. Version 1, the service's first release,
# recorded every change of balance as one BalanceChanged event with a signed delta;
# version 2 records Deposited and Withdrawn, each with a positive amount. The log
# keeps v1 events for ever, so v2 code reads them through ``upcast``.
SCHEMA = 2


class DomainError(Exception):
    """The command breaks a rule of the aggregate (no event is written)."""


class ConcurrencyConflict(Exception):
    """The command expected a version the aggregate has moved past."""

    def __init__(self, account_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"expected_version: account {account_id} is at version {actual}, not {expected}; "
            "reload it and decide again"
        )
        self.expected = expected
        self.actual = actual


@dataclass
class Account:
    account_id: str
    version: int = 0  # number of events applied; 0 = does not exist yet
    balance: int = 0
    opened: bool = False


@dataclass
class Command:
    account_id: str
    type: str
    amount: int = 0
    expected_version: int | None = None


@dataclass
class Event:
    account_id: str
    type: str
    version: int  # the aggregate's version after this event
    amount: int = 0
    meta: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "account_id": self.account_id,
            "type": self.type,
            "version": self.version,
            "amount": self.amount,
            "meta": self.meta,
            "schema": SCHEMA,
        }

    def as_v1(self) -> dict:
        """Return the event in the shape the v1 writer appended (no schema field)."""
        if self.type == "AccountOpened":
            return {
                "account_id": self.account_id,
                "type": self.type,
                "version": self.version,
                "meta": self.meta,
            }
        return {
            "account_id": self.account_id,
            "type": "BalanceChanged",
            "version": self.version,
            "delta": self.amount if self.type == "Deposited" else -self.amount,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        data = upcast(data)
        return cls(
            data["account_id"],
            data["type"],
            data["version"],
            data.get("amount", 0),
            data.get("meta", {}),
        )


def upcast(data: dict) -> dict:
    """Return an event as v2 code reads it: a v1 event translated, a v2 event as it is.

    The log is never rewritten; every reader translates the old shape as it reads.
    """
    if data.get("schema", 1) >= SCHEMA:
        return data
    event = {key: value for key, value in data.items() if key != "delta"}
    event["schema"] = SCHEMA
    if data.get("type") == "BalanceChanged":
        delta = data["delta"]
        event["type"] = "Deposited" if delta > 0 else "Withdrawn"
        event["amount"] = abs(delta)
    return event


def evolve(account: Account, event: Event) -> Account:
    """Return the account after one event (never fails: events are facts)."""
    if event.version <= account.version:
        # A re-sent append (publisher retry after a lost confirm) can put an event in
        # the log twice; its version says it is already applied.
        return account
    balance = account.balance
    if event.type == "Deposited":
        balance += event.amount
    elif event.type == "Withdrawn":
        balance -= event.amount
    return Account(
        account.account_id, event.version, balance, account.opened or event.type == "AccountOpened"
    )


def fold(account_id: str, events: list[Event]) -> Account:
    """Return the account rebuilt from its events, in order."""
    account = Account(account_id)
    for event in events:
        account = evolve(account, event)
    return account


def decide(account: Account, command: Command) -> Event:
    """Return the event a command produces, or raise DomainError/ConcurrencyConflict."""
    if command.expected_version is not None and command.expected_version != account.version:
        raise ConcurrencyConflict(account.account_id, command.expected_version, account.version)
    if command.type not in COMMANDS:
        raise DomainError(f"type: must be one of {', '.join(COMMANDS)}")
    if command.type == "open":
        if account.opened:
            raise DomainError(f"account {account.account_id} is already open")
        return Event(account.account_id, "AccountOpened", account.version + 1)
    if not account.opened:
        raise DomainError(f"account {account.account_id} is not open")
    if not 0 < command.amount <= MAX_AMOUNT:
        raise DomainError(f"amount: must be an integer in 1..{MAX_AMOUNT}")
    if command.type == "withdraw" and command.amount > account.balance:
        raise DomainError(f"insufficient funds: balance {account.balance}, asked {command.amount}")
    kind = "Deposited" if command.type == "deposit" else "Withdrawn"
    return Event(account.account_id, kind, account.version + 1, command.amount)
