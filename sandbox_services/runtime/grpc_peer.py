"""Record a gRPC client span's target (server.address, server.port).

The OpenTelemetry grpc.aio client instrumentation does not record where a call
goes, and the supervisor needs the port to name the callee (the span's peer).
Our interceptors run inside OpenTelemetry's (it puts its own first), so the
current span there is the client span.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import grpc
from opentelemetry import trace


def _split_target(target: str) -> tuple[str, int | None]:
    address = target.rsplit("/", 1)[-1]
    if address.startswith("ipv4:"):
        address = address[len("ipv4:") :]
    host, _, port = address.rpartition(":")
    return (host or address), (int(port) if port.isdigit() else None)


class _PeerMixin:
    def __init__(self, host: str, port: int | None) -> None:
        self._host = host
        self._port = port

    def _mark(self) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("server.address", self._host)
            if self._port is not None:
                span.set_attribute("server.port", self._port)


class _UnaryUnary(_PeerMixin, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request) -> Any:
        self._mark()
        return await continuation(client_call_details, request)


class _UnaryStream(_PeerMixin, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request) -> Any:
        self._mark()
        return await continuation(client_call_details, request)


class _StreamUnary(_PeerMixin, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation, client_call_details, request_iterator
    ) -> Any:
        self._mark()
        return await continuation(client_call_details, request_iterator)


class _StreamStream(_PeerMixin, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation, client_call_details, request_iterator
    ) -> Any:
        self._mark()
        return await continuation(client_call_details, request_iterator)


def _wrap(factory: Any) -> Any:
    @functools.wraps(factory)
    def channel(target: str, *args: Any, **kwargs: Any) -> Any:
        host, port = _split_target(target)
        ours = [cls(host, port) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
        kwargs["interceptors"] = list(kwargs.get("interceptors") or ()) + ours
        return factory(target, *args, **kwargs)

    channel.__lab_peer__ = True
    return channel


def add_peer_interceptors(aio: ModuleType) -> None:
    """Wrap ``grpc.aio.insecure_channel`` and ``secure_channel`` once per process."""
    for name in ("insecure_channel", "secure_channel"):
        factory = getattr(aio, name)
        if not getattr(factory, "__lab_peer__", False):
            setattr(aio, name, _wrap(factory))
