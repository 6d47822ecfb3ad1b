"""The catalog's simulated work: products, reservations, a price ticker, call records.

Both servers (server_rest.py, server_grpc.py) call exactly this code, so any
difference the learner measures between them comes from the transport.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator

from sandbox_services.rest_vs_grpc.services.catalog.interface import (
    InvalidArgument,
    NotFound,
    Unavailable,
    PriceUpdate,
    Product,
    ProductPage,
    Reservation,
    ServerStats,
)

_WORDS = [
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lumen",
    "meridian",
    "nimbus",
    "onyx",
    "prairie",
    "quartz",
    "riverside",
    "sierra",
    "tundra",
    "umber",
    "vertex",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
]
_TAGS = ("outdoor", "kitchen", "garden", "office", "travel", "audio", "sport", "kids", "eco")
# Windows of the connection-counting experiment kept at once; older ones go.
_MAX_WINDOWS = 64


@functools.lru_cache(maxsize=4)
def make_products(count: int, seed: int = 7) -> tuple[Product, ...]:
    """Return ``count`` deterministic products, so both servers hold the same data.

    Products are frozen, so one tuple serves every catalog of the process; the
    default catalog is made once at import, in the warm sandbox host, and every
    forked catalog service starts with it instead of spending ~10 ms making it.
    """
    rng = random.Random(seed)
    products = []
    for index in range(count):
        words = rng.sample(_WORDS, 3)
        products.append(
            Product(
                id=index + 1,
                sku=f"SKU-{index + 1:06d}",
                name=" ".join(word.capitalize() for word in words[:2]),
                description=f"A {words[0]} {words[1]} made for {words[2]} days, "
                f"batch {rng.randint(1000, 9999)}.",
                price_cents=rng.randint(199, 99_999),
                currency="EUR",
                stock=rng.randint(0, 500),
                tags=tuple(rng.sample(_TAGS, rng.randint(1, 4))),
                rating=round(rng.uniform(1.0, 5.0), 2),
                active=rng.random() > 0.1,
            )
        )
    return tuple(products)


def require_int(name: str, value: object, *, low: int, high: int) -> int:
    """Return ``value`` if it is an integer within [low, high], else raise InvalidArgument."""
    # bool is an int subclass in Python; JSON true must not pass for a count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}, got {value}")
    return value


class PriceTicker:
    """Emit a new price for one symbol every ``interval_s``, to any number of watchers.

    It ticks only while someone watches. A read in between (a REST poll) steps the
    ticks it missed first, so every reader sees the price as if it had ticked all
    along, and an idle catalog does no periodic work.
    """

    # A read after a long rest steps at most this many missed ticks.
    MAX_CATCH_UP = 10_000

    def __init__(self, symbol: str, interval_s: float, start_price_micros: int) -> None:
        self.symbol = symbol
        self.interval_s = interval_s
        self._price = start_price_micros
        self._sequence = 0
        self._random = random.Random(11)
        self._watchers: set[asyncio.Queue[PriceUpdate]] = set()
        self._wanted = asyncio.Event()
        self._last_tick = time.monotonic()
        self._latest = self._next_update()

    @property
    def latest(self) -> PriceUpdate:
        """Return the newest price (stepping the ticks missed while nobody watched)."""
        if not self._watchers:
            self._catch_up()
        return self._latest

    def _catch_up(self) -> None:
        missed = int((time.monotonic() - self._last_tick) / self.interval_s)
        if missed > 0:
            for _ in range(min(missed, self.MAX_CATCH_UP)):
                self._latest = self._next_update()
            self._last_tick += missed * self.interval_s

    def _next_update(self) -> PriceUpdate:
        self._sequence += 1
        step = self._random.randint(-50_000, 50_000)
        self._price = max(1_000_000, self._price + step)
        return PriceUpdate(self.symbol, self._sequence, self._price, time.time_ns())

    async def run(self) -> None:
        """Tick until cancelled, on a fixed schedule that does not drift, while anyone watches."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if not self._watchers:  # nobody streams: rest until someone does
                self._wanted.clear()
                await self._wanted.wait()
                self._catch_up()
                next_at = self._last_tick
            next_at += self.interval_s
            # A starved process skips the ticks it missed rather than bursting them.
            next_at = max(next_at, loop.time())
            await asyncio.sleep(next_at - loop.time())
            self._last_tick = next_at
            self._latest = self._next_update()
            for queue in self._watchers:
                if queue.full():
                    queue.get_nowait()  # a slow watcher loses the oldest, never blocks the ticker
                queue.put_nowait(self._latest)

    async def watch(self) -> AsyncIterator[PriceUpdate]:
        """Yield the latest price, then every new one as it is emitted."""
        queue: asyncio.Queue[PriceUpdate] = asyncio.Queue(maxsize=256)
        self._catch_up()
        self._watchers.add(queue)
        self._wanted.set()
        try:
            yield self._latest
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)


class CallRecord:
    """Count calls per method, and the distinct client connections seen per test window."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._windows: OrderedDict[str, tuple[set[str], list[int]]] = OrderedDict()

    def call(self, method: str) -> None:
        self.calls[method] += 1

    def seen(self, window: str, peer: str) -> None:
        if window not in self._windows:
            self._windows[window] = (set(), [0])
            while len(self._windows) > _MAX_WINDOWS:
                self._windows.popitem(last=False)
        peers, count = self._windows[window]
        peers.add(peer)
        count[0] += 1

    def stats(self, window: str = "") -> ServerStats:
        peers, count = self._windows.get(window, (set(), [0]))
        return ServerStats(dict(self.calls), len(peers), count[0])


class CatalogBackend:
    """The work behind both servers."""

    def __init__(
        self,
        *,
        catalog_size: int = 1000,
        ticker_symbol: str = "LAB",
        ticker_interval_s: float = 0.05,
        start_price_micros: int = 100_000_000,
        work_us: int = 0,
    ) -> None:
        self.products = make_products(catalog_size)
        self.ticker = PriceTicker(ticker_symbol, ticker_interval_s, start_price_micros)
        self.record = CallRecord()
        self.work_us = work_us

    def list_products(self, count: object, offset: object = 0) -> ProductPage:
        """Return a page of products."""
        self.record.call("ListProducts")
        count = require_int("count", count, low=1, high=len(self.products))
        offset = require_int("offset", offset, low=0, high=len(self.products) - 1)
        self._simulate_work()
        page = self.products[offset : offset + count]
        if len(page) < count:  # wrap around so every page has the size asked for
            page = page + self.products[: count - len(page)]
        return ProductPage(page, len(self.products))

    def reserve(self, product_id: object, count: object) -> Reservation:
        """Reserve units of a product (simulated: stock is not decremented)."""
        self.record.call("Reserve")
        product_id = require_int("product_id", product_id, low=1, high=2**62)
        count = require_int("count", count, low=1, high=10_000)
        if product_id > len(self.products):
            raise NotFound(f"no product {product_id}")
        product = self.products[product_id - 1]
        return Reservation(uuid.uuid4().hex[:12], product_id, count, count * product.price_cents)

    def get_price(self, symbol: str) -> PriceUpdate:
        """Return the latest price of the ticker's symbol."""
        self.record.call("GetPrice")
        self._check_symbol(symbol)
        return self.ticker.latest

    def watch_prices(self, symbol: str) -> AsyncIterator[PriceUpdate]:
        """Return an iterator over the symbol's prices as they change."""
        self.record.call("WatchPrices")
        self._check_symbol(symbol)
        return self.ticker.watch()

    async def hold(self, window: str, hold_ms: object, peer: str) -> str:
        """Record the connection a call came on, keep the call open for hold_ms, return the peer."""
        self.record.call("Hold")
        hold_ms = require_int("hold_ms", hold_ms, low=0, high=5_000)
        self.record.seen(window, peer)
        await asyncio.sleep(hold_ms / 1000)
        return peer

    async def slow_lookup(self, product_id: object, work_ms: object, window: str) -> Product:
        """Return a product after work_ms of simulated work; count a call given up on midway.

        A caller's deadline or cancel reaches the server as a cancelled task
        (grpc.aio cancels the handler when the HTTP/2 stream is reset or the
        deadline it carries passes): the server stops working on an answer
        nobody will read, and records that it did.
        """
        self.record.call("SlowLookup")
        product = self._product(product_id)
        work_ms = require_int("work_ms", work_ms, low=0, high=60_000)
        self.record.seen(window, "started")
        try:
            await asyncio.sleep(work_ms / 1000)
        except asyncio.CancelledError:
            self.record.call(f"SlowLookup.cancelled:{window}")
            raise
        self.record.call(f"SlowLookup.completed:{window}")
        return product

    def flaky_lookup(self, product_id: object, failure_ratio: float, window: str) -> Product:
        """Return a product, or raise Unavailable for a failure_ratio share of attempts.

        Every attempt is counted under the window: the retry experiment's load
        amplification is this count divided by the calls the client made.
        """
        self.record.call("FlakyLookup")
        self.record.seen(window, "attempt")
        if random.random() < failure_ratio:
            self.record.call(f"FlakyLookup.refused:{window}")
            raise Unavailable("refused on purpose (failure_ratio)")
        return self._product(product_id)

    def reserve_stream_opened(self) -> None:
        """Count one ReserveMany call, however many messages it carries."""
        self.record.call("ReserveMany")

    def reserve_streamed(self, product_id: object, count: object, window: str) -> Reservation:
        """Reserve as reserve() does, counting the message under the stream's window."""
        self.record.seen(window, "message")
        return self.reserve(product_id, count)

    def get_item(self, product_id: object) -> Product:
        """Return one product (the schema evolution experiment's item)."""
        self.record.call("GetItem")
        return self._product(product_id)

    def _product(self, product_id: object) -> Product:
        product_id = require_int("product_id", product_id, low=1, high=2**62)
        if product_id > len(self.products):
            raise NotFound(f"no product {product_id}")
        return self.products[product_id - 1]

    def server_stats(self, window: str = "") -> ServerStats:
        """Return call counts and the window's connection count."""
        return self.record.stats(window)

    def _check_symbol(self, symbol: str) -> None:
        if symbol != self.ticker.symbol:
            raise NotFound(f"no symbol {symbol!r}; this ticker has {self.ticker.symbol!r}")

    def _simulate_work(self) -> None:
        # Busy CPU, not sleep: it stands for computation and holds the GIL like it.
        if self.work_us:
            until = time.perf_counter() + self.work_us / 1e6
            while time.perf_counter() < until:
                pass


def backend_from_settings(settings: dict) -> CatalogBackend:
    """Build the backend from the lab's settings (see labs/rest_vs_grpc/config.py)."""
    return CatalogBackend(
        catalog_size=int(settings.get("catalog_size", DEFAULT_CATALOG_SIZE)),
        ticker_symbol=str(settings.get("ticker_symbol", "LAB")),
        ticker_interval_s=float(settings.get("ticker_interval_s", 0.05)),
        start_price_micros=int(settings.get("ticker_start_price_micros", 100_000_000)),
        work_us=int(settings.get("backend_work_us", 0)),
    )


DEFAULT_CATALOG_SIZE = 1000
make_products(DEFAULT_CATALOG_SIZE)  # made once in the warm host, inherited by every fork
