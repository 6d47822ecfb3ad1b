"""Run this lab's services and experiments without a supervisor, with the runtime's own parts.

For the tests and the benchmark: the same service mains, contexts, fault
table, tracing set-up and forking as a sandbox, minus Redis commands and the
web tier. Tracing (``--trace``) sends spans to the sandbox's outbox list in
Redis, where a test can read them.

    python -m sandbox_services.rest_vs_grpc.standalone serve [--trace] [--sandbox-id ID]
        Fork every service, print {"ports": {...}} once all are healthy, serve until SIGTERM.
    python -m sandbox_services.rest_vs_grpc.standalone run EXPERIMENT PARAMS --ports PORTS
        Run one experiment (in this fresh process, as a runner would) and print its result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.sampling import ParentBased

from sandbox_services.rest_vs_grpc import LAB
from sandbox_services.runtime.context import (
    AdjustableRatioSampler,
    ExperimentCtx,
    SandboxPlan,
    ServiceCtx,
)
from sandbox_services.runtime.faults import ServiceTable
from sandbox_services.runtime.forking import fork_child
from sandbox_services.runtime.probe import grpc_health_once, http_health_once
from sandbox_services.runtime.service_processes import load_callable

READY_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_plan(sandbox_id: str, ports: dict[str, int], workdir: Path) -> SandboxPlan:
    """Return a sandbox plan of this lab with the given ports, every service marked running."""
    table = ServiceTable([spec.name for spec in LAB.services])
    for spec in LAB.services:
        table.set_running(spec.name, 0, True)
    return SandboxPlan(
        sandbox_id=sandbox_id,
        lab=LAB,
        ports={name: [port] for name, port in ports.items()},
        table=table,
        amqp_url=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        workdir=workdir,
    )


def _init_tracing(name: str, plan: SandboxPlan, **options: Any) -> None:
    from sandbox_services.runtime.tracing import init_tracing

    init_tracing(name, sandbox_id=plan.sandbox_id, redis_url=plan.redis_url, **options)


def _service_child(plan: SandboxPlan, name: str, trace: bool) -> int:
    if trace:
        _init_tracing(name, plan)
    ctx = ServiceCtx(plan, name, 0)
    main = load_callable(LAB.service(name).main)

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await main(ctx)
        except asyncio.CancelledError:
            pass

    asyncio.run(serve())
    return 0


async def _wait_healthy(ports: dict[str, int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    for spec in LAB.services:
        probe = grpc_health_once if spec.protocol == "grpc" else http_health_once
        while not await probe(ports[spec.name]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{spec.name} did not become healthy")
            await asyncio.sleep(0.02)


def serve(sandbox_id: str, trace: bool, workdir: Path) -> None:
    """Fork every service of the lab, report their ports, and serve until SIGTERM."""
    ports = {spec.name: _free_port() for spec in LAB.services}
    plan = make_plan(sandbox_id, ports, workdir)
    # This process never touches gRPC, so forking after its imports is safe.
    children = [
        fork_child(lambda name=spec.name: _service_child(plan, name, trace))
        for spec in LAB.services
    ]
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        asyncio.run(_wait_healthy(ports))
        print(json.dumps({"ports": ports, "sandbox_id": sandbox_id}), flush=True)
        while not stop["now"]:
            signal.pause()
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def run(
    experiment: str,
    params: dict,
    ports: dict[str, int],
    sandbox_id: str,
    trace: bool,
    workdir: Path,
) -> dict:
    """Run one experiment of the lab here, as the supervisor's forked runner would."""
    plan = make_plan(sandbox_id, ports, workdir)
    sampler = AdjustableRatioSampler(1.0)
    if trace:
        _init_tracing("learner", plan, sampler=ParentBased(sampler))
    ctx = ExperimentCtx(plan, run_id=uuid.uuid4().hex, experiment=experiment, sampler=sampler)
    main = load_callable(LAB.experiment(experiment).main)
    result = asyncio.run(main(ctx, params))
    if trace:
        from sandbox_services.runtime.tracing import shutdown_tracing

        shutdown_tracing()
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve or run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", action="store_true", help="trace to the Redis outbox")
    parser.add_argument("--sandbox-id", default=uuid.uuid4().hex)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rest-vs-grpc"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    runner = commands.add_parser("run")
    runner.add_argument("experiment")
    runner.add_argument("params", type=json.loads)
    runner.add_argument("--ports", type=json.loads, required=True)
    arguments = parser.parse_args(argv)
    workdir = arguments.workdir / arguments.sandbox_id
    if arguments.command == "serve":
        serve(arguments.sandbox_id, arguments.trace, workdir)
    else:
        result = run(
            arguments.experiment,
            arguments.params,
            arguments.ports,
            arguments.sandbox_id,
            arguments.trace,
            workdir,
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
