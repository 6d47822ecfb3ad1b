"""A local stand-in for the sandbox runtime: fork a lab's services and run its experiments.

Tests and the benchmark use it until the real supervisor runs them; the broker,
Redis and the processes are real. It implements the ServiceContext and
ExperimentContext of ``sandbox_services.runtime.spec`` and nothing more.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib
import multiprocessing
import os
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_services.runtime.spec import InjectedFault, LabSpec, ServiceSpec

_fork = multiprocessing.get_context("fork")


def load(dotted: str) -> Callable:
    """Return the function a "package.module:function" path names."""
    module, _, function = dotted.partition(":")
    return getattr(importlib.import_module(module), function)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalFaults:
    """Faults shared with the sandbox through shared memory (set before fork)."""

    def __init__(self) -> None:
        self._delay_ms = _fork.Value("d", 0.0, lock=False)
        self._error_rate = _fork.Value("d", 0.0, lock=False)

    @property
    def delay_s(self) -> float:
        return self._delay_ms.value / 1000

    @property
    def error_rate(self) -> float:
        return self._error_rate.value

    def set(self, *, delay_ms: float | None = None, error_rate: float | None = None) -> None:
        if delay_ms is not None:
            self._delay_ms.value = delay_ms
        if error_rate is not None:
            self._error_rate.value = error_rate

    async def apply(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error_rate and (os.urandom(1)[0] / 255) < self.error_rate:
            raise InjectedFault("injected error")


@dataclass
class LocalServiceContext:
    sandbox: LocalSandbox
    name: str
    replica: int
    port: int | None
    faults: LocalFaults
    ready_event: Any
    metrics_seen: list = field(default_factory=list)

    @property
    def sandbox_id(self) -> str:
        return self.sandbox.sandbox_id

    @property
    def amqp_url(self) -> str:
        return self.sandbox.amqp_url

    @property
    def redis_url(self) -> str:
        return self.sandbox.redis_url

    @property
    def prefix(self) -> str:
        return self.sandbox.prefix

    @property
    def workdir(self) -> Path:
        return self.sandbox.workdir

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.sandbox.lab.settings

    def address(self, service: str) -> str:
        return self.sandbox.address(service)

    def addresses(self, service: str) -> list[str]:
        return self.sandbox.addresses(service)

    def ready(self) -> None:
        self.ready_event.set()

    def metrics(self, values: Mapping[str, Any]) -> None:
        pass


def _service_child(main: str, context: LocalServiceContext) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # SIGUSR1 prints every thread's stack to stderr: what a test shows when a service hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    asyncio.run(load(main)(context))


class LocalSandbox:
    """Run one lab's services as forked processes on 127.0.0.1."""

    def __init__(
        self,
        lab: LabSpec,
        *,
        workdir: Path,
        amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F",
        redis_url: str = "redis://127.0.0.1:6379/0",
        sandbox_id: str | None = None,
    ) -> None:
        self.lab = lab
        self.sandbox_id = sandbox_id or uuid.uuid4().hex
        self.prefix = f"lab.{self.sandbox_id}."
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.amqp_url = amqp_url
        self.redis_url = redis_url
        self.faults = {spec.name: LocalFaults() for spec in lab.services}
        self.ports = {
            (spec.name, replica): free_port() if spec.protocol != "amqp" else None
            for spec in lab.services
            for replica in range(spec.max_replicas)
        }
        self.processes: dict[tuple[str, int], multiprocessing.Process] = {}
        self.progress_log: list[tuple[float, str]] = []

    # --- addresses -------------------------------------------------------------------
    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[(service, 0)]}"

    def addresses(self, service: str) -> list[str]:
        return [
            f"127.0.0.1:{self.ports[key]}"
            for key, process in sorted(self.processes.items())
            if key[0] == service and process.is_alive()
        ]

    # --- processes ---------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> None:
        for spec in self.lab.services:
            self._start(spec, 0, timeout_s)

    def _start(self, spec: ServiceSpec, replica: int, timeout_s: float = 20.0) -> None:
        key = (spec.name, replica)
        if key in self.processes and self.processes[key].is_alive():
            return
        ready = _fork.Event()
        context = LocalServiceContext(
            self, spec.name, replica, self.ports[key], self.faults[spec.name], ready
        )
        process = _fork.Process(target=_service_child, args=(spec.main, context), daemon=True)
        process.start()
        self.processes[key] = process
        self._wait_ready(spec, replica, ready, process, timeout_s)

    def _wait_ready(self, spec, replica, ready, process, timeout_s: float) -> None:
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if not process.is_alive():
                raise RuntimeError(f"service {spec.name} exited with {process.exitcode}")
            if spec.protocol == "amqp":
                if ready.wait(0.05):
                    return
                continue
            try:
                url = f"http://127.0.0.1:{self.ports[(spec.name, replica)]}/healthz"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"service {spec.name} not ready after {timeout_s}s")

    def _stop(self, name: str, replica: int, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop((name, replica), None)
        if process is None or not process.is_alive():
            return
        os.kill(process.pid, sig)
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)

    def dump_stacks(self) -> None:
        """Have every running service print its threads' stacks to stderr."""
        for (name, replica), process in sorted(self.processes.items()):
            if process.is_alive():
                print(f"--- stacks of {name}-{replica} (pid {process.pid})", flush=True)
                os.kill(process.pid, signal.SIGUSR1)
                time.sleep(0.2)

    def stop(self) -> None:
        for name, replica in list(self.processes):
            self._stop(name, replica)

    def states(self) -> dict:
        out: dict[str, dict] = {}
        for spec in self.lab.services:
            alive = [k for k, p in self.processes.items() if k[0] == spec.name and p.is_alive()]
            out[spec.name] = {"state": "running" if alive else "stopped", "replicas": len(alive)}
        return out

    async def control(self, action: str, service: str, **params: Any) -> dict:
        """Change a service as the supervisor would: stop, start, restart, kill, delay, ..."""
        spec = self.lab.service(service)
        running = sorted(r for (n, r), p in self.processes.items() if n == service and p.is_alive())
        if action in ("stop", "kill"):
            sig = signal.SIGKILL if action == "kill" else signal.SIGTERM
            for replica in running:
                await asyncio.to_thread(self._stop, service, replica, sig)
        elif action == "start":
            await asyncio.to_thread(self._start, spec, 0)
        elif action == "restart":
            for replica in running:
                await asyncio.to_thread(self._stop, service, replica)
            for replica in running or [0]:
                await asyncio.to_thread(self._start, spec, replica)
        elif action == "delay":
            self.faults[service].set(delay_ms=float(params.get("delay_ms", 0)))
        elif action == "error":
            self.faults[service].set(error_rate=float(params.get("error_rate", 0)))
        elif action == "clear":
            self.faults[service].set(delay_ms=0, error_rate=0)
        elif action == "scale":
            replicas = int(params["replicas"])
            if not 1 <= replicas <= spec.max_replicas:
                raise ValueError(f"replicas must be 1..{spec.max_replicas}")
            for replica in range(replicas):
                await asyncio.to_thread(self._start, spec, replica)
            for replica in range(replicas, spec.max_replicas):
                await asyncio.to_thread(self._stop, service, replica)
        else:
            raise ValueError(f"unknown action {action!r}")
        return self.states()

    def experiment_context(self) -> LocalExperimentContext:
        return LocalExperimentContext(self)

    async def run(self, experiment: str, params: dict | None = None) -> dict:
        """Run one experiment of the lab in this process and return its result."""
        spec = self.lab.experiment(experiment)
        main = load(spec.main)
        return await asyncio.wait_for(
            main(self.experiment_context(), dict(params or {})), spec.timeout_s
        )

    async def teardown(self) -> None:
        if self.lab.teardown:
            await load(self.lab.teardown)(self.experiment_context())

    async def metrics(self) -> dict:
        return await load(self.lab.metrics)(self.experiment_context()) if self.lab.metrics else {}


def _fork_child(function: Callable, args: tuple, conn) -> None:
    try:
        result = function(*args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        conn.send(("ok", result))
    except BaseException as error:
        conn.send(("error", repr(error)))
    finally:
        conn.close()


class LocalExperimentContext:
    def __init__(self, sandbox: LocalSandbox) -> None:
        self.sandbox = sandbox
        self.sandbox_id = sandbox.sandbox_id
        self.run_id = uuid.uuid4().hex
        self.amqp_url = sandbox.amqp_url
        self.redis_url = sandbox.redis_url
        self.prefix = sandbox.prefix
        self.workdir = sandbox.workdir
        self.settings = sandbox.lab.settings

    def address(self, service: str) -> str:
        return self.sandbox.address(service)

    def addresses(self, service: str) -> list[str]:
        return self.sandbox.addresses(service)

    async def progress(self, fraction: float, message: str = "") -> None:
        self.sandbox.progress_log.append((fraction, message))

    async def control(self, action: str, service: str, **params: Any) -> dict:
        return await self.sandbox.control(action, service, **params)

    async def fork(self, function: Callable[..., Any], *args: Any) -> Any:
        parent, child = _fork.Pipe(duplex=False)
        process = _fork.Process(target=_fork_child, args=(function, args, child), daemon=True)
        process.start()
        child.close()
        status, value = await asyncio.to_thread(parent.recv)
        await asyncio.to_thread(process.join, 10)
        if status != "ok":
            raise RuntimeError(value)
        return value

    def set_sample_ratio(self, ratio: float) -> None:
        pass

    def metrics(self, values: Mapping[str, Any]) -> None:
        pass
