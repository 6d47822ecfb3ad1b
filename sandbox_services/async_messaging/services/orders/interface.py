"""Domain types of the order service."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Mode = Literal["sync", "async"]


@dataclass
class Order:
    order_id: str
    customer_email: str
    amount_cents: int
    # Lab knob, not business data: consumers named here crash after their work and
    # before their ack, the first time they see this order (the at-least-once experiment).
    crash_in: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class OrderReceipt:
    order_id: str
    mode: Mode
    # Which downstream services were told before the reply (sync) or "broker" (async).
    told: list[str]


class OrderRefused(Exception):
    """The order could not be accepted; the message says which dependency failed."""

    def __init__(self, message: str, *, service: str) -> None:
        super().__init__(message)
        self.service = service
