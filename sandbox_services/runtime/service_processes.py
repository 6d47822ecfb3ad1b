"""The supervisor's view of its service processes: fork, probe, stop, kill, scale, reap."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from .config import configure_logging
from .context import ServiceCtx
from .plan import SandboxPlan
from .forking import fork_child, read_until_eof, wait_exit
from .probe import grpc_health_once, http_health_once
from .serve import serve_until_terminated
from .spec import ServiceSpec
from .tracing import init_tracing

STOP_GRACE_S = 2.0
# Services that call ctx.ready() (the serve helpers do) are never probed.
PROBE_DELAY_S = 0.1
PROBE_INTERVAL_S = 0.02


class ServiceFailed(Exception):
    """A service process did not become ready; the message says why."""


def load_callable(dotted: str) -> Callable[..., Any]:
    """Return the function named by "package.module:function"."""
    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _service_process(plan: SandboxPlan, spec: ServiceSpec, replica: int, ready_fd: int) -> int:
    """Run one replica of a service; this is the whole life of the forked child."""
    configure_logging(spec.name if replica == 0 else f"{spec.name}#{replica}")
    init_tracing(spec.name, sandbox_id=plan.sandbox_id, redis_url=plan.redis_url)
    ctx = ServiceCtx(plan, spec.name, replica, ready_fd)
    return asyncio.run(serve_until_terminated(load_callable(spec.main), ctx))


@dataclass
class Instance:
    """One replica's process as the supervisor tracks it."""

    replica: int
    pid: int | None = None
    state: str = "stopped"  # starting, running, stopping, stopped, crashed, failed
    exit_code: int | None = None
    reason: str = ""
    ready_ms: float | None = None  # fork to ready, as the supervisor saw it
    exited: asyncio.Future | None = field(default=None, repr=False)


class ServiceManager:
    """Start and change the services of one sandbox; report their states."""

    def __init__(self, plan: SandboxPlan, on_change: Callable[[], None], *, nice: int = 0) -> None:
        self.plan = plan
        self._on_change = on_change
        self._nice = nice  # added to each service process's niceness (forking.fork_child)
        self._start_timeout_s = float(plan.lab.settings.get("start_timeout_s", 10.0))
        self.specs = {spec.name: spec for spec in plan.lab.services}
        self.desired = {name: 1 for name in self.specs}
        self.instances: dict[str, dict[int, Instance]] = {name: {} for name in self.specs}
        self._locks = {name: asyncio.Lock() for name in self.specs}

    # -- processes ---------------------------------------------------------

    def _fork(self, spec: ServiceSpec, instance: Instance) -> int:
        read_end, write_end = os.pipe()
        log_path = self.plan.workdir / "logs" / f"{spec.name}-{instance.replica}.log"
        pid = fork_child(
            lambda: _service_process(self.plan, spec, instance.replica, write_end),
            log_path=log_path,
            nice=self._nice,
        )
        os.close(write_end)
        instance.pid, instance.state, instance.exit_code, instance.reason = (
            pid,
            "starting",
            None,
            "",
        )
        instance.exited = asyncio.ensure_future(self._watch(spec.name, instance, pid))
        return read_end

    async def _watch(self, name: str, instance: Instance, pid: int) -> int:
        code = await wait_exit(pid)
        if instance.pid == pid:
            self.plan.table.set_running(name, instance.replica, False)
            instance.exit_code = code
            if instance.state == "stopping":
                instance.state = "stopped"
            elif instance.state != "failed":
                instance.state = "crashed"
                instance.reason = f"exited with code {code}"
            instance.pid = None
            self._on_change()
        return code

    async def _ready(self, spec: ServiceSpec, instance: Instance, ready_fd: int) -> None:
        assert instance.exited is not None
        if spec.protocol == "amqp":
            probe = asyncio.ensure_future(read_until_eof(ready_fd))
        else:
            port = self.plan.ports[spec.name][instance.replica]
            probe = asyncio.ensure_future(self._signalled_or_probed(spec.protocol, port, ready_fd))
        try:
            done, _ = await asyncio.wait(
                {probe, instance.exited},
                timeout=self._start_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:  # also when the start itself is cancelled (a stop during start-up)
            if not probe.done():
                probe.cancel()
        if probe in done and probe.result():
            return
        if instance.exited in done:
            raise ServiceFailed(
                f"{spec.name} exited with code {instance.exited.result()} before it was ready"
            )
        if probe in done:
            raise ServiceFailed(f"{spec.name} closed its ready pipe without calling ctx.ready()")
        raise ServiceFailed(f"{spec.name} was not ready after {self._start_timeout_s:g} s")

    @classmethod
    async def _signalled_or_probed(cls, protocol: str, port: int, ready_fd: int) -> bool:
        """Wait for the service's ``ctx.ready()`` or, failing that, for its health check.

        ``serve_http`` and ``serve_grpc`` call ``ctx.ready()`` once listening, so
        most services are ready without a single probe. A service serving by its
        own means is probed, from PROBE_DELAY_S on: probing every few
        milliseconds from the fork cost each start tens of milliseconds of CPU
        when a class started at once and services came up slowly.
        """
        signalled = asyncio.ensure_future(read_until_eof(ready_fd))
        probed = asyncio.ensure_future(cls._probe(protocol, port, delay_s=PROBE_DELAY_S))
        try:
            await asyncio.wait({signalled, probed}, return_when=asyncio.FIRST_COMPLETED)
            if signalled.done() and signalled.result():
                return True
            return await probed  # closed without ready(): only the health check can tell
        finally:
            for waiter in (signalled, probed):
                waiter.cancel()

    @staticmethod
    async def _probe(protocol: str, port: int, *, delay_s: float = 0.0) -> bool:
        check = http_health_once if protocol == "http" else grpc_health_once
        await asyncio.sleep(delay_s)
        while not await check(port, 1.0):
            await asyncio.sleep(PROBE_INTERVAL_S)
        return True

    async def _start_replica(self, name: str, replica: int) -> None:
        spec = self.specs[name]
        instance = self.instances[name].setdefault(replica, Instance(replica))
        if instance.pid is not None:
            if not _has_exited(instance.pid):
                return  # running or starting: a start changes nothing
            # It died on its own a moment ago (a consumer's simulated crash) and the
            # command came before its watcher ran: let the watcher record the exit first.
            assert instance.exited is not None
            await instance.exited
        forked_at = time.monotonic()
        ready_fd = self._fork(spec, instance)
        self._on_change()
        try:
            await self._ready(spec, instance, ready_fd)
        except ServiceFailed as failure:
            instance.state, instance.reason = "failed", str(failure)
            await self._terminate(instance, grace_s=0)
            self._on_change()
            raise
        instance.state = "running"
        instance.ready_ms = round((time.monotonic() - forked_at) * 1000, 1)
        self.plan.table.set_running(name, replica, True)
        self._on_change()

    async def _terminate(self, instance: Instance, *, grace_s: float = STOP_GRACE_S) -> None:
        if instance.pid is None or instance.exited is None:
            return
        if instance.state != "failed":
            instance.state = "stopping"
        self._on_change()
        try:
            os.kill(instance.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
        except ProcessLookupError:
            pass
        done, _ = await asyncio.wait({instance.exited}, timeout=grace_s or None)
        if not done:
            try:
                os.kill(instance.pid, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
            await instance.exited

    # -- operations ----------------------------------------------------------

    async def start(self, name: str) -> None:
        """Start every desired replica of a service that is not running; wait until ready."""
        async with self._locks[name]:
            await asyncio.gather(
                *(self._start_replica(name, replica) for replica in range(self.desired[name]))
            )

    async def start_all(self) -> None:
        """Start every service at once; raise ServiceFailed naming the first that failed."""
        results = await asyncio.gather(
            *(self.start(name) for name in self.specs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def stop(self, name: str, *, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every replica of a service (SIGTERM, then SIGKILL after the grace)."""
        async with self._locks[name]:
            await asyncio.gather(
                *(
                    self._terminate(instance, grace_s=grace_s)
                    for instance in self.instances[name].values()
                )
            )

    async def stop_all(self, *, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every service."""
        await asyncio.gather(*(self.stop(name, grace_s=grace_s) for name in self.specs))

    async def kill(self, name: str) -> None:
        """SIGKILL every replica, as a crash would; the service shows "crashed"."""
        waits = []
        for instance in self.instances[name].values():
            if instance.pid is not None and instance.exited is not None:
                os.kill(instance.pid, signal.SIGKILL)
                waits.append(instance.exited)
        await asyncio.gather(*waits)

    async def scale(self, name: str, replicas: int) -> None:
        """Run ``replicas`` instances of a service, each on its own pre-allocated port."""
        spec = self.specs[name]
        if not 1 <= replicas <= spec.max_replicas:
            raise ValueError(f"{name} takes 1 to {spec.max_replicas} replicas, not {replicas}")
        self.desired[name] = replicas
        async with self._locks[name]:
            extra = [
                instance for number, instance in self.instances[name].items() if number >= replicas
            ]
            await asyncio.gather(*(self._terminate(instance) for instance in extra))
            await asyncio.gather(*(self._start_replica(name, number) for number in range(replicas)))

    async def operate(self, op: str, name: str, params: dict[str, Any]) -> None:
        """Apply one operation (stop, start, restart, delay, error, clear, kill, scale, status)."""
        if name not in self.specs:
            raise ValueError(f"no service named {name!r}")
        if op == "status":  # a read: the caller gets the states, nothing changes
            return
        table = self.plan.table
        if op == "stop":
            await self.stop(name)
        elif op == "start":
            await self.start(name)
        elif op == "restart":
            await self.stop(name)
            await self.start(name)
        elif op == "kill":
            await self.kill(name)
        elif op == "scale":
            await self.scale(name, int(params.get("replicas", 1)))
        elif op == "delay":
            delay_ms = float(params.get("delay_ms", 0))
            if not 0 <= delay_ms <= 60_000:
                raise ValueError("delay_ms must be between 0 and 60000")
            table.set_faults(name, delay_ms=delay_ms)
        elif op == "error":
            error_rate = float(params.get("error_rate", 0))
            if not 0 <= error_rate <= 1:
                raise ValueError("error_rate must be between 0 and 1")
            table.set_faults(name, error_rate=error_rate)
        elif op == "clear":
            table.set_faults(name, delay_ms=0, error_rate=0)
        else:
            raise ValueError(f"unknown operation {op!r}")
        self._on_change()

    # -- reporting -----------------------------------------------------------

    def states(self) -> dict[str, dict[str, Any]]:
        """Return each service's state, ports, pids and faults (the shape ``spawn`` documents)."""
        result = {}
        for name, spec in self.specs.items():
            instances = [
                self.instances[name].get(number, Instance(number))
                for number in range(max(self.desired[name], len(self.instances[name])))
            ]
            states = [instance.state for instance in instances[: self.desired[name]]]
            state = _overall(states)
            first = instances[0]
            delay_ms, error_rate = self.plan.table.faults(name)
            ports = self.plan.ports[name]
            result[name] = {
                "state": state,
                "protocol": spec.protocol,
                "title": spec.title,
                "port": ports[0] if ports else None,
                "pid": first.pid,
                "replicas": self.desired[name],
                "max_replicas": spec.max_replicas,
                "exit_code": first.exit_code,
                "reason": next((i.reason for i in instances if i.reason), ""),
                "delay_ms": delay_ms,
                "error_rate": error_rate,
                "instances": [
                    {
                        "replica": i.replica,
                        "state": i.state,
                        "pid": i.pid,
                        "port": ports[i.replica] if ports else None,
                        "exit_code": i.exit_code,
                        "ready_ms": i.ready_ms,
                    }
                    for i in instances
                ],
            }
        return result

    def pids(self) -> list[int]:
        """Return the pids of every live service process."""
        return [
            instance.pid
            for by_replica in self.instances.values()
            for instance in by_replica.values()
            if instance.pid is not None
        ]


def _has_exited(pid: int) -> bool:
    """Tell whether a child has exited or is exiting, without reaping it (its watcher does that)."""
    try:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
    except ChildProcessError:
        return True
    return _is_exiting(pid)


# The kernel's PF_EXITING (include/linux/sched.h), field 9 of /proc/<pid>/stat.
PF_EXITING = 0x4


def _is_exiting(pid: int) -> bool:
    """Tell whether a process is on its way out though not yet waitable.

    A killed process closes its files (its port refuses at once) before it
    becomes a zombie; a start that came in between took it for running and
    did nothing (seen under load: a start right after a crash kept the dead
    pid). The flag is set when the exit begins and never cleared.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return bool(int(fields[6]) & PF_EXITING)
    except (OSError, IndexError, ValueError):
        return False


def _overall(states: list[str]) -> str:
    for transient in ("starting", "stopping"):
        if transient in states:
            return transient
    if states and all(state == "running" for state in states):
        return "running"
    if "running" in states:
        return "degraded"  # some replicas up, some not
    for down in ("failed", "crashed"):
        if down in states:
            return down
    return "stopped"
