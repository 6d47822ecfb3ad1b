"""Domain types and the Protocol of an order consumer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PoisonMessage(Exception):
    """This message can never be handled, however often it is tried."""


@dataclass
class HandleResult:
    message_id: str
    # False when the idempotent consumer recognised a message it had already handled.
    effect: bool


@dataclass
class ConsumerSettings:
    idempotent: bool = False
    prefetch: int = 10
    work_ms: float | None = None  # None: the lesson's default for this consumer


class ConsumerService(Protocol):
    async def handle(self, order: dict, *, message_id: str) -> HandleResult:
        """Do this consumer's work for one order (send the email, write the audit line...)."""

    async def stats(self) -> dict:
        """Return counts from the consumer's own store: effects, distinct orders, duplicates."""
