"""Run the saga sandbox on this machine without the platform: for tests and the benchmark.

A small stand-in for the runtime's supervisor: every service is a real OS
process (``python -m sandbox_services.saga.local``), on its own 127.0.0.1
port, talking real gRPC and real RabbitMQ; ``LocalSandbox.experiment_context``
gives experiments the ``ExperimentContext`` they get in the lab, with
``control`` able to stop, start and SIGKILL services.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

from sandbox_services.runtime.probe import grpc_health_once

from .knobs import CONFIG

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalSandbox:
    """Start, stop and kill the lesson's services as separate processes."""

    def __init__(
        self,
        workdir: Path,
        *,
        amqp_url: str = DEFAULT_AMQP_URL,
        settings: Mapping[str, Any] | None = None,
        sandbox_id: str | None = None,
    ) -> None:
        from . import LAB  # late: LAB imports this package's modules

        self.lab = LAB
        self.sandbox_id = sandbox_id or uuid.uuid4().hex
        self.prefix = f"lab.{self.sandbox_id}."
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.amqp_url = amqp_url
        self.settings = dict(settings or CONFIG.as_settings())
        self.ports = {spec.name: free_port() for spec in self.lab.services}
        self.processes: dict[str, subprocess.Popen] = {}

    def address(self, service: str) -> str:
        """Return "127.0.0.1:PORT" of a service."""
        return f"127.0.0.1:{self.ports[service]}"

    async def start_all(self, timeout_s: float = 60.0) -> None:
        """Start every service and wait until each answers its health check."""
        for spec in self.lab.services:
            self._spawn(spec.name)
        await asyncio.gather(*(self._healthy(name, timeout_s) for name in self.processes))

    async def start(self, service: str, timeout_s: float = 60.0) -> None:
        """Start one service (if not running) and wait until it is healthy."""
        process = self.processes.get(service)
        if process is None or process.poll() is not None:
            self._spawn(service)
        await self._healthy(service, timeout_s)

    def kill(self, service: str) -> int:
        """SIGKILL a service: no cleanup, no goodbye, as a crash would be."""
        process = self.processes[service]
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        return process.wait(10)

    def stop(self, service: str) -> int | None:
        """Stop a service gracefully (SIGTERM), then for sure."""
        process = self.processes.get(service)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait(10)

    def running(self, service: str) -> bool:
        """Tell whether a service's process is alive."""
        process = self.processes.get(service)
        return process is not None and process.poll() is None

    def states(self) -> dict:
        """Return the services' states in the shape ctx.control answers with."""
        return {
            name: {
                "state": "running" if self.running(name) else "stopped",
                "port": self.ports[name],
            }
            for name in self.ports
        }

    def close(self) -> None:
        """Stop every service (killing stragglers) and delete the sandbox's broker objects."""
        for name in list(self.processes):
            try:
                self.stop(name)
            except Exception:
                self.kill(name)
        from .hooks import delete_broker_objects

        delete_broker_objects(self.amqp_url, self.prefix)

    def experiment_context(self, run_id: str | None = None) -> LocalExperimentContext:
        """Return an ExperimentContext for running an experiment against this sandbox."""
        return LocalExperimentContext(self, run_id or uuid.uuid4().hex)

    def _spawn(self, service: str) -> None:
        payload = {
            "service": service,
            "main": self.lab.service(service).main,
            "ports": self.ports,
            "workdir": str(self.workdir),
            "prefix": self.prefix,
            "amqp_url": self.amqp_url,
            "settings": self.settings,
            "sandbox_id": self.sandbox_id,
        }
        log = open(self.workdir / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", "sandbox_services.saga.local", json.dumps(payload)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    async def _healthy(self, service: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[service].poll() is not None:
                raise RuntimeError(
                    f"{service} exited with {self.processes[service].returncode};"
                    f" see {self.workdir / (service + '.log')}"
                )
            if await grpc_health_once(self.ports[service], 0.5):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{service} not healthy after {timeout_s}s")


@dataclass
class LocalExperimentContext:
    """The ExperimentContext of spec.py, over a LocalSandbox."""

    sandbox: LocalSandbox
    run_id: str
    progress_log: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sandbox_id = self.sandbox.sandbox_id
        self.amqp_url = self.sandbox.amqp_url
        self.redis_url = ""
        self.prefix = self.sandbox.prefix
        self.workdir = self.sandbox.workdir
        self.settings = self.sandbox.settings

    def address(self, service: str) -> str:
        return self.sandbox.address(service)

    def addresses(self, service: str) -> list[str]:
        return [self.sandbox.address(service)] if self.sandbox.running(service) else []

    async def progress(self, fraction: float, message: str = "") -> None:
        self.progress_log.append((fraction, message))

    async def control(self, action: str, service: str, **params: Any) -> dict:
        if action == "kill":
            await asyncio.to_thread(self.sandbox.kill, service)
        elif action == "stop":
            await asyncio.to_thread(self.sandbox.stop, service)
        elif action == "start":
            await self.sandbox.start(service)
        elif action == "restart":
            await asyncio.to_thread(self.sandbox.stop, service)
            await self.sandbox.start(service)
        else:
            raise ValueError(f"the local sandbox cannot {action!r}")
        return self.sandbox.states()

    async def fork(self, function: Callable[..., Any], *args: Any) -> Any:
        result = function(*args)
        return await result if asyncio.iscoroutine(result) else result

    def set_sample_ratio(self, ratio: float) -> None:
        pass

    def metrics(self, values: Mapping[str, Any]) -> None:
        pass


class _NoFaults:
    """No learner faults outside the lab."""

    delay_s = 0.0
    error_rate = 0.0

    async def apply(self) -> None:
        return None


@dataclass
class _ServiceContext:
    sandbox_id: str
    name: str
    port: int
    amqp_url: str
    prefix: str
    workdir: Path
    settings: Mapping[str, Any]
    ports: Mapping[str, int]
    replica: int = 0
    redis_url: str = ""
    faults: _NoFaults = field(default_factory=_NoFaults)

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def addresses(self, service: str) -> list[str]:
        return [self.address(service)]

    def ready(self) -> None:
        pass

    def metrics(self, values: Mapping[str, Any]) -> None:
        pass


def _trace_locally(service: str) -> None:
    """Give spans real ids (no exporter) and carry context over gRPC, as the lab would."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.grpc import (
        GrpcAioInstrumentorClient,
        GrpcAioInstrumentorServer,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service})))
    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()


def _serve(payload: dict) -> None:
    """Run one service's main until SIGTERM."""
    _trace_locally(payload["service"])
    module, function = payload["main"].split(":")
    main = getattr(import_module(module), function)
    ctx = _ServiceContext(
        sandbox_id=payload["sandbox_id"],
        name=payload["service"],
        port=payload["ports"][payload["service"]],
        amqp_url=payload["amqp_url"],
        prefix=payload["prefix"],
        workdir=Path(payload["workdir"]),
        settings=payload["settings"],
        ports=payload["ports"],
    )

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await main(ctx)
        except asyncio.CancelledError:
            pass

    asyncio.run(run())


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
