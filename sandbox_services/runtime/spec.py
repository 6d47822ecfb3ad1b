"""The contract between the lab platform and a lesson's live services.

A lesson's sandbox is described by one ``LabSpec`` in
``sandbox_services/labs/<slug with underscores>/__init__.py`` (variable ``LAB``).
The runtime (host, supervisor) starts every ``ServiceSpec`` as its own OS
process forked from a warm parent, and runs every experiment in a fresh forked
runner process. Lesson code depends only on the types and Protocols here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from collections.abc import Awaitable, Callable, Mapping

from .params import Param

Protocol_ = Literal["http", "grpc", "amqp"]


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a sandbox: a lifeline in the trace, a process on 127.0.0.1.

    ``main`` is a dotted path "package.module:function" to ``async def f(ctx:
    ServiceContext) -> None`` that serves until cancelled. A service is ready
    when it calls ``ctx.ready()`` (``serve_http`` and ``serve_grpc`` do, once
    listening). Failing that, ``protocol`` decides how readiness is checked:
    "http" probes GET /healthz on ``ctx.port``, "grpc" calls the standard gRPC
    health service on ``ctx.port``; "amqp" (no listening port) must call it.
    """

    name: str
    main: str
    protocol: Protocol_
    title: str = ""
    max_replicas: int = 1
    # Names of services whose addresses this one needs; informative for the
    # diagram's lifeline order, every port is allocated before any fork anyway.
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: ``main`` is "module:function" to ``async def f(ctx, params) -> dict``.

    The function runs in its own forked runner process (never in the
    supervisor, which must not touch gRPC before forking). Its return value is
    the run's result and must be JSON-serialisable; see ``RESULT_SHAPE``.

    ``parameters`` is the one declaration of what the learner may set (the
    lesson's ``knobs.py``): the lesson page and the API show it, and
    ``params.validate`` checks a run's values against it before the run. The
    function receives every declared parameter, already checked and with
    defaults filled in, and checks none of them again.
    """

    name: str
    main: str
    timeout_s: float = 60.0
    parameters: tuple[Param, ...] = ()


@dataclass(frozen=True)
class LabSpec:
    slug: str
    services: tuple[ServiceSpec, ...]
    experiments: tuple[ExperimentSpec, ...]
    # Optional "module:function" to ``async def f(ctx: ExperimentContext) -> None``
    # run in a forked process when the sandbox stops: delete broker objects etc.
    teardown: str | None = None
    # Optional "module:function" to ``async def f(ctx: ExperimentContext) -> dict``
    # called every ~second by a forked metrics process while the sandbox runs;
    # the dict is fanned out as a ``metrics`` message (queue depths, breaker states).
    metrics: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Optional "module:function" to ``def f() -> None`` that raises with a message
    # naming what this machine lacks for the lab (a binary such as haproxy); the
    # sandbox is then refused with that message, and other labs start as before.
    preflight: str | None = None
    # Extra 127.0.0.1 ports the lab's own processes listen on besides the services'
    # (a sidecar proxy's listeners): pool name -> count, reserved with the services'
    # ports and found in ``plan.extra_ports[name]``.
    extra_ports: Mapping[str, int] = field(default_factory=dict)
    # Optional "module:function" to ``def f(plan, service, replica, peer) -> list[str] | None``:
    # the addresses through which a service reaches a peer when the lab puts
    # something between them (the mesh's sidecars); None means the peer's own.
    # ``ctx.address`` and ``ctx.addresses`` of services ask it on every call.
    route: str | None = None
    # Optional "module:function" to ``def f(plan) -> dict[int, str]``: names for the
    # lab's extra ports (a sidecar's listeners), so a span that calls one names its peer.
    port_names: str | None = None
    # The sequence diagram's columns, left to right, the same for every run of the
    # lesson so arrows never flip. Empty means the learner, then the services in
    # declaration order, then rabbitmq; names the trace shows but this leaves out
    # come after, in the order they first appear.
    lifelines: tuple[str, ...] = ()

    def lifeline_order(self) -> tuple[str, ...]:
        """Return the diagram's columns: ``lifelines``, or the default order."""
        if self.lifelines:
            return self.lifelines
        return ("learner", *(spec.name for spec in self.services), "rabbitmq")

    def service(self, name: str) -> ServiceSpec:
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def experiment(self, name: str) -> ExperimentSpec:
        for spec in self.experiments:
            if spec.name == name:
                return spec
        raise KeyError(name)


class InjectedFault(Exception):
    """Raised by ``Faults.apply`` when the learner's error rate fires."""


class Faults(Protocol):
    """The learner's live faults for this service, shared with the supervisor.

    Servers built with ``serve.http_app`` or ``serve.grpc_server`` get them applied
    by the ``runtime.faults`` middleware or interceptor; the runtime wraps nothing
    else, so a service that builds its own app, and every AMQP consumer (per
    message), calls ``apply`` itself, once.
    """

    @property
    def delay_s(self) -> float: ...

    @property
    def error_rate(self) -> float: ...

    async def apply(self) -> None:
        """Sleep the injected delay, then raise InjectedFault with the error rate."""


class ServiceContext(Protocol):
    sandbox_id: str
    name: str  # service name, as in ServiceSpec
    replica: int  # 0..max_replicas-1
    port: int | None  # pre-allocated 127.0.0.1 port (None for protocol "amqp")
    amqp_url: str
    redis_url: str
    prefix: str  # prefix for every RabbitMQ name: f"lab.{sandbox_id}."
    workdir: Path  # private directory of this sandbox (SQLite files etc.)
    settings: Mapping[str, Any]
    faults: Faults

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of another service of this sandbox (replica 0)."""

    def addresses(self, service: str) -> list[str]:
        """Return the addresses of every running replica of a service."""

    def ready(self) -> None:
        """Tell the supervisor this service is ready (required for protocol "amqp")."""

    def metrics(self, values: Mapping[str, Any]) -> None:
        """Publish gauges/counters; they reach the browser as a ``metrics`` message."""


class ExperimentContext(Protocol):
    sandbox_id: str
    run_id: str
    amqp_url: str
    redis_url: str
    prefix: str
    workdir: Path
    settings: Mapping[str, Any]

    def address(self, service: str) -> str: ...

    def addresses(self, service: str) -> list[str]: ...

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress 0..1; it reaches the browser as a ``run`` message."""

    async def control(self, action: str, service: str, **params: Any) -> dict:
        """Ask the supervisor to change a service, as a learner's fault would.

        Actions: stop, start, restart, delay (delay_ms), error (error_rate),
        clear, kill (SIGKILL), scale (replicas), and status (changes nothing: the
        supervisor's view of its processes, e.g. whether one has exited yet).
        Returns the service states.
        ``start`` leaves a running replica as it is and starts one that stopped or
        crashed (whatever its exit code); ``scale`` gives each replica its own port
        and the same ``workdir``.
        """

    async def fork(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` (sync or async) in a fresh forked process; return its
        JSON-serialisable result. For load generators that must not share a GIL."""

    def set_sample_ratio(self, ratio: float) -> None:
        """Sample new root traces of this runner at ``ratio`` (1.0 = trace every call)."""

    def metrics(self, values: Mapping[str, Any]) -> None: ...


ServiceMain = Callable[[ServiceContext], Awaitable[None]]
ExperimentMain = Callable[[ExperimentContext, dict], Awaitable[dict]]

# What an experiment returns, so one generic renderer in the browser can draw it.
# Every key is optional; experiments may add keys of their own.
RESULT_SHAPE = {
    "headline": "One sentence: what happened.",
    "summary": [{"label": "REST p99", "value": 12.3, "unit": "ms"}],
    "charts": [
        {
            "title": "Latency percentiles",
            "type": "bar",  # bar | line
            "x_label": "percentile",
            "y_label": "ms",
            "categories": ["p50", "p95", "p99"],  # bar charts
            "series": [{"name": "REST", "values": [1.0, 2.0, 3.0]}],
            # line charts: "series": [{"name": "depth", "points": [[x, y], ...]}]
        }
    ],
    "table": {"columns": ["service", "count"], "rows": [["email", 10]]},
    "notes": ["Traces were sampled at 1% during the load."],
    "ok": True,  # False marks an experiment whose invariant/expectation failed
}
