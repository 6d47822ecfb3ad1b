"""The backend's simulated work, and the knobs that make one replica slow or failing.

Each replica keeps its own counters: the replica's side of the story, which
the experiments set against what the caller saw and what HAProxy logged.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from dataclasses import dataclass, field

from .interface import Quote


@dataclass
class Behaviour:
    """How this replica answers: added delay, and the share of requests it fails."""

    delay_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503


@dataclass
class Counters:
    received: int = 0
    failed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    traceparents: int = 0  # requests that arrived with a trace context


@dataclass
class PriceBackend:
    """The price list of one replica."""

    replica: int
    work_ms: float = 0.0
    behaviour: Behaviour = field(default_factory=Behaviour)
    counters: Counters = field(default_factory=Counters)

    async def quote(self, item: str, *, traced: bool = False) -> Quote | int:
        """Return a quote, or the error status this replica was told to fail with."""
        counters = self.counters
        counters.received += 1
        counters.traceparents += traced
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            delay_s = (self.work_ms + self.behaviour.delay_ms) / 1000
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if self.behaviour.error_rate > 0 and random.random() < self.behaviour.error_rate:
                counters.failed += 1
                return self.behaviour.error_status
            return Quote(item, 100 + zlib.crc32(item.encode()) % 9900, self.replica)
        finally:
            counters.in_flight -= 1
