"""Learner faults (delay, error rate) in shared memory, and the server hooks that apply them.

The supervisor creates one ``ServiceTable`` (an anonymous shared mmap) before it
forks anything, so every service, replica and runner reads its faults with no
I/O; the supervisor writes them when a learner changes a service. The table also
records which replicas of each service run, for ``ctx.addresses``.
"""

from __future__ import annotations

import asyncio
import inspect
import mmap
import random
import struct
from typing import Any
from collections.abc import Awaitable, Callable, Iterable

import grpc
from aiohttp import web

from .spec import InjectedFault

# delay_ms, error_rate, bit mask of running replicas, spare. Aligned 8-byte
# fields: a reader sees either the old or the new value of each.
_SLOT = struct.Struct("=ddQQ")
HEALTH_PATHS = frozenset({"/healthz"})
HEALTH_SERVICE_PREFIX = "/grpc.health.v1.Health/"


class ServiceTable:
    """Per-service faults and running replicas, shared by every process of one sandbox."""

    def __init__(self, names: Iterable[str]) -> None:
        self._index = {name: number for number, name in enumerate(names)}
        self._memory = mmap.mmap(-1, _SLOT.size * max(1, len(self._index)))

    def _read(self, name: str) -> tuple[float, float, int, int]:
        return _SLOT.unpack_from(self._memory, _SLOT.size * self._index[name])

    def _write(self, name: str, delay_ms: float, error_rate: float, mask: int) -> None:
        _SLOT.pack_into(self._memory, _SLOT.size * self._index[name], delay_ms, error_rate, mask, 0)

    def set_faults(
        self, name: str, *, delay_ms: float | None = None, error_rate: float | None = None
    ) -> None:
        """Change a service's injected delay and/or error rate."""
        old_delay, old_rate, mask, _ = self._read(name)
        self._write(
            name,
            old_delay if delay_ms is None else float(delay_ms),
            old_rate if error_rate is None else float(error_rate),
            mask,
        )

    def faults(self, name: str) -> tuple[float, float]:
        """Return (delay_ms, error_rate) of a service."""
        delay_ms, error_rate, _, _ = self._read(name)
        return delay_ms, error_rate

    def set_running(self, name: str, replica: int, running: bool) -> None:
        """Mark one replica of a service as running or not."""
        delay_ms, error_rate, mask, _ = self._read(name)
        mask = mask | (1 << replica) if running else mask & ~(1 << replica)
        self._write(name, delay_ms, error_rate, mask)

    def running(self, name: str) -> list[int]:
        """Return the replica numbers of a service that are running."""
        mask = self._read(name)[2]
        return [replica for replica in range(64) if mask >> replica & 1]


class SharedFaults:
    """The ``Faults`` of one service, read live from the shared table."""

    def __init__(self, table: ServiceTable, service: str) -> None:
        self._table = table
        self._service = service

    @property
    def delay_s(self) -> float:
        """Return the injected delay in seconds."""
        return self._table.faults(self._service)[0] / 1000.0

    @property
    def error_rate(self) -> float:
        """Return the fraction of calls that fail."""
        return self._table.faults(self._service)[1]

    def message(self) -> str:
        """Return the text a learner sees when the error rate fires."""
        return f"fault injected by the lab: {self._service} error rate {self.error_rate:g}"

    async def apply(self) -> None:
        """Sleep the injected delay, then raise InjectedFault with the error rate."""
        delay_ms, error_rate = self._table.faults(self._service)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        if error_rate > 0 and random.random() < error_rate:
            raise InjectedFault(self.message())


def fault_middleware(faults: SharedFaults) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Return aiohttp middleware that delays requests and answers 503 at the error rate."""

    @web.middleware
    async def apply_faults(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in HEALTH_PATHS:
            try:
                await faults.apply()
            except InjectedFault as fault:
                # Raised (not returned) so the tracing middleware records it as an error.
                raise web.HTTPServiceUnavailable(text=str(fault)) from None
        return await handler(request)

    return apply_faults


class FaultInterceptor(grpc.aio.ServerInterceptor):
    """Delay gRPC calls and fail them with UNAVAILABLE at the error rate (health excepted)."""

    def __init__(self, faults: SharedFaults) -> None:
        self._faults = faults

    async def _apply(self, context: grpc.aio.ServicerContext) -> None:
        try:
            await self._faults.apply()
        except InjectedFault as fault:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(fault))

    def _unary_response(self, behavior: Callable) -> Callable:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._apply(context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return wrapped

    def _streaming_response(self, behavior: Callable) -> Callable:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._apply(context)
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            elif inspect.isawaitable(result):
                await result  # a handler that writes with context.write()
            else:
                for item in result:
                    yield item

        return wrapped

    async def intercept_service(self, continuation: Callable, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_SERVICE_PREFIX):
            return handler
        if handler.unary_unary:
            return handler._replace(unary_unary=self._unary_response(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=self._unary_response(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._streaming_response(handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=self._streaming_response(handler.stream_stream))
        return handler
