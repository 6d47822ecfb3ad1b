"""What a service or an experiment sees of its sandbox: the ``spec.py`` contexts, implemented."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult, TraceIdRatioBased

from . import tracing
from .faults import SharedFaults
from .forking import run_forked
from .outbox import OutboxWriter
from .plan import SandboxPlan
from .zygote import Zygote


def _publish_metrics(source: str, values: Mapping[str, Any], writer: OutboxWriter | None) -> None:
    writer = writer or tracing.outbox_writer()
    if writer is not None:
        writer.put_metrics(source, values)


@dataclass
class ServiceCtx:
    """The ``ServiceContext`` of one replica of one service."""

    plan: SandboxPlan
    name: str
    replica: int
    ready_fd: int | None = None
    faults: SharedFaults = field(init=False)
    _route: Callable[..., list[str] | None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.faults = SharedFaults(self.plan.table, self.name)
        self.sandbox_id = self.plan.sandbox_id
        ports = self.plan.ports[self.name]
        self.port = ports[self.replica] if ports else None
        self.amqp_url = self.plan.amqp_url
        self.redis_url = self.plan.redis_url
        self.prefix = self.plan.prefix
        self.workdir = self.plan.workdir
        self.settings = self.plan.lab.settings

    def _routed(self, service: str) -> list[str] | None:
        # A lab that puts something between services (the mesh's sidecars) says
        # where this replica reaches the peer; the service's code stays the same.
        if self.plan.lab.route is None:
            return None
        if self._route is None:
            module_name, _, attribute = self.plan.lab.route.partition(":")
            self._route = getattr(importlib.import_module(module_name), attribute)
        return self._route(self.plan, self.name, self.replica, service)

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of another service of this sandbox (replica 0)."""
        routed = self._routed(service)
        return routed[0] if routed else self.plan.address(service)

    def addresses(self, service: str) -> list[str]:
        """Return the addresses of every running replica of a service."""
        routed = self._routed(service)
        return list(routed) if routed else self.plan.addresses(service)

    def ready(self) -> None:
        """Tell the supervisor this service is ready."""
        if self.ready_fd is not None:
            descriptor, self.ready_fd = self.ready_fd, None
            os.write(descriptor, b"r")
            os.close(descriptor)

    def metrics(self, values: Mapping[str, Any]) -> None:
        """Publish gauges/counters; they reach the browser as a ``metrics`` message."""
        source = self.name if self.replica == 0 else f"{self.name}#{self.replica}"
        _publish_metrics(source, values, None)


class AdjustableRatioSampler(Sampler):
    """Sample root traces at a ratio the experiment may change while it runs."""

    def __init__(self, ratio: float = 1.0) -> None:
        self.set_ratio(ratio)

    def set_ratio(self, ratio: float) -> None:
        """Sample new root traces at ``ratio`` from now on."""
        self.ratio = min(1.0, max(0.0, float(ratio)))
        self._inner = TraceIdRatioBased(self.ratio)

    def should_sample(
        self,
        parent_context,
        trace_id,
        name,
        kind=None,
        attributes=None,
        links=None,
        trace_state=None,
    ) -> SamplingResult:
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"Adjustable{{{self._inner.get_description()}}}"


class ControlChannel:
    """The runner's end of the socketpair to the supervisor: JSON lines both ways."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock: asyncio.Lock | None = None
        self._ids = itertools.count(1)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            self._streams = await asyncio.open_unix_connection(sock=self._sock)
            self._lock = asyncio.Lock()
        return self._streams

    async def send(self, message: dict) -> None:
        """Send one message that expects no answer."""
        _, writer = await self._open()
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()

    async def ask(self, message: dict) -> dict:
        """Send one message and return the supervisor's answer."""
        reader, writer = await self._open()
        assert self._lock is not None
        async with self._lock:
            writer.write(json.dumps({**message, "id": next(self._ids)}).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        if not line:
            raise ConnectionError("the supervisor closed the control channel")
        return json.loads(line)


@dataclass
class ExperimentCtx:
    """The ``ExperimentContext`` of a runner (also used by teardown and metrics hooks)."""

    plan: SandboxPlan
    run_id: str = ""
    experiment: str = ""
    control_channel: ControlChannel | None = None
    sampler: AdjustableRatioSampler | None = None
    writer: OutboxWriter | None = None
    source: str = "learner"
    # Set in a runner: returns its zygote once gRPC has been used, else None.
    zygote: Callable[[], Zygote | None] | None = None

    def __post_init__(self) -> None:
        self.sandbox_id = self.plan.sandbox_id
        self.amqp_url = self.plan.amqp_url
        self.redis_url = self.plan.redis_url
        self.prefix = self.plan.prefix
        self.workdir = self.plan.workdir
        self.settings = self.plan.lab.settings

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of a service of this sandbox (replica 0)."""
        return self.plan.address(service)

    def addresses(self, service: str) -> list[str]:
        """Return the addresses of every running replica of a service."""
        return self.plan.addresses(service)

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress 0..1; it reaches the browser as a ``run`` message."""
        if self.control_channel is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
            await self.control_channel.send(
                {"type": "progress", "progress": fraction, "message": message}
            )

    async def control(self, action: str, service: str, **params: Any) -> dict:
        """Ask the supervisor to change a service; return the services' states."""
        if self.control_channel is None:
            raise RuntimeError("control() is only available to experiment runs")
        answer = await self.control_channel.ask(
            {"type": "control", "op": action, "service": service, "params": params}
        )
        if answer.get("error"):
            raise RuntimeError(answer["error"])
        return answer.get("services", {})

    async def fork(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in a fresh forked process; return its JSON result.

        Before this run has used gRPC the runner forks itself (any callable
        works); after, a clean zygote forks the worker, and ``function`` must
        be a module-level function with picklable arguments (see zygote.py).
        """
        zygote = self.zygote() if self.zygote is not None else None
        if zygote is None:
            return await run_forked(function, *args)
        ratio = self.sampler.ratio if self.sampler is not None else 1.0
        return await zygote.run(ratio, function, *args)

    def set_sample_ratio(self, ratio: float) -> None:
        """Sample new root traces of this runner at ``ratio`` (1.0 = trace every call)."""
        if self.sampler is not None:
            self.sampler.set_ratio(ratio)

    def metrics(self, values: Mapping[str, Any]) -> None:
        """Publish gauges/counters as a ``metrics`` message."""
        _publish_metrics(self.source, values, self.writer)
