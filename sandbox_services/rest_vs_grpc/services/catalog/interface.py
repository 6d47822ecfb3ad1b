"""The catalog's domain types and the Protocol every transport implements.

A scenario written against ``CatalogAPI`` does not know whether JSON over
HTTP/1.1 or protobuf over HTTP/2 carries it: that is the point of the lesson,
since it lets the two be compared with everything else held equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    sku: str
    name: str
    description: str
    price_cents: int
    currency: str
    stock: int
    tags: tuple[str, ...]
    rating: float
    active: bool


@dataclass(frozen=True, slots=True)
class ProductPage:
    products: tuple[Product, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str
    product_id: int
    count: int
    total_cents: int


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    symbol: str
    sequence: int
    price_micros: int
    emitted_unix_nanos: int


@dataclass(frozen=True, slots=True)
class ServerStats:
    calls: dict[str, int] = field(default_factory=dict)
    window_connections: int = 0
    window_calls: int = 0


class InvalidArgument(ValueError):
    """A request the backend refuses; REST answers 400, gRPC INVALID_ARGUMENT."""


class NotFound(LookupError):
    """A product or symbol that does not exist; REST answers 404, gRPC NOT_FOUND."""


class Unavailable(RuntimeError):
    """An attempt the server refuses for now (it may succeed if tried again); gRPC UNAVAILABLE."""


class CallFailed(RuntimeError):
    """A call that failed for another reason: a server error, a refused connection, a timeout."""


class CatalogAPI(Protocol):
    """What the catalog offers, whatever carries it."""

    # Requests this client has sent (HTTP requests or RPCs started): the
    # streaming experiment compares how many each style needs.
    calls_made: int

    async def list_products(self, count: int, offset: int = 0) -> ProductPage:
        """Return ``count`` products starting at ``offset``."""
        ...

    async def reserve(self, product_id: int, count: int) -> Reservation:
        """Reserve ``count`` units of a product."""
        ...

    async def get_price(self, symbol: str) -> PriceUpdate:
        """Return the latest price of a symbol."""
        ...

    def watch_prices(self, symbol: str, poll_interval_s: float) -> AsyncIterator[PriceUpdate]:
        """Yield each new price of a symbol: a stream where the transport has one, else polls."""
        ...

    async def hold(self, window: str, hold_ms: int) -> str:
        """Keep one call open for ``hold_ms``; return the client address the server saw."""
        ...

    async def server_stats(self, window: str = "") -> ServerStats:
        """Return the server's call counts and the connections it saw in ``window``."""
        ...

    async def close(self) -> None:
        """Close the client's connections."""
        ...
