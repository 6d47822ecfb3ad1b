"""Domain types of an order consumer."""

from __future__ import annotations

from dataclasses import dataclass


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
    # Email only: None records the email as a row in the store; "plain" also calls the
    # outside mail provider, and "keyed" calls it with the message id as idempotency key.
    provider: str | None = None
