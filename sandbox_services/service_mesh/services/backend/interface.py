"""The backend's domain: a price for an item, from one of several identical replicas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Quote:
    item: str
    price_cents: int
    replica: int  # which replica answered: the load balancer's choice, visible


class BackendUnavailable(Exception):
    """The backend (or the mesh in front of it) answered with an error status."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"backend answered {status}: {body[:100]}")
        self.status = status


class PriceService(Protocol):
    async def quote(self, item: str) -> Quote:
        """Return the price of an item; raise BackendUnavailable on an error status."""
