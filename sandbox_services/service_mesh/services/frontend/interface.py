"""The frontend's domain: a checkout that needs a price from the backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Checkout:
    item: str
    total_cents: int
    priced_by_replica: int


class CheckoutService(Protocol):
    async def checkout(self, item: str, *, forward_trace: bool = True) -> Checkout:
        """Price the item at the backend and return the checkout."""
