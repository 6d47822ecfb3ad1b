"""What experiments measure: percentiles, queue depths sampled over time, waiting for a state."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import pika.exceptions

from .connection import connect

log = logging.getLogger(__name__)


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index], 2)


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float, every_s: float = 0.1
) -> bool:
    """Poll ``check`` until it returns true; return False when the timeout passes first."""
    give_up = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < give_up:
        try:
            if await check():
                return True
        except Exception as error:
            # Broad on purpose: a check asks a service that may still be starting or that
            # the experiment stopped, through clients whose errors this module cannot know.
            # Each miss is a "not yet"; the last one is reported below if the wait fails.
            log.debug("not yet: %r", error)
            last_error = error
        await asyncio.sleep(every_s)
    if last_error is not None:
        log.warning(
            "gave up waiting after %g s; the last check failed with %r",
            timeout_s,
            last_error,
            exc_info=last_error,
        )
    return False


class DepthSampler:
    """Sample queue depths (ready + consumers) over time on its own connection and thread."""

    def __init__(self, amqp_url: str, queues: dict[str, str], every_s: float = 0.2) -> None:
        self._url = amqp_url
        self._queues = queues  # short name -> full name
        self._every_s = every_s
        self.points: dict[str, list[list[float]]] = {short: [] for short in queues}
        self._task: asyncio.Task | None = None
        self._started = 0.0

    def depth(self, short: str) -> int:
        return int(self.points[short][-1][1]) if self.points[short] else 0

    def _sample_blocking(self, stop: threading.Event) -> None:
        connection = connect(self._url, name="depth-sampler", deadline_s=5)
        channel = connection.channel()
        try:
            while not stop.is_set():
                at = round(time.monotonic() - self._started, 2)
                for short, name in self._queues.items():
                    try:
                        ok = channel.queue_declare(name, passive=True)
                        self.points[short].append([at, ok.method.message_count])
                    except pika.exceptions.ChannelClosedByBroker:
                        channel = connection.channel()
                time.sleep(self._every_s)
        finally:
            connection.close()

    def start(self) -> None:
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._task = asyncio.create_task(asyncio.to_thread(self._sample_blocking, self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
