"""Experiment runs: a fresh forked runner per run, talking to the supervisor over a socketpair."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import math
import os
import signal
import socket
import traceback
from typing import Any
from collections.abc import Awaitable, Callable

import grpc
import redis.asyncio as aioredis
from opentelemetry.sdk.trace.sampling import ParentBased
from redis.exceptions import RedisError

from . import keys, messages
from .config import configure_logging
from .context import AdjustableRatioSampler, ControlChannel, ExperimentCtx
from .params import ParameterError, validate
from .plan import SandboxPlan
from .forking import fork_child, wait_exit
from .service_processes import ServiceManager, load_callable
from .spec import ExperimentSpec
from .tracing import attach_run, init_tracing, shutdown_tracing
from .zygote import Zygote, fork_zygote_before_grpc

log = logging.getLogger(__name__)

# How long a runner that has answered may take to flush and exit before SIGKILL.
EXIT_GRACE_S = 2.0
PROGRESS_INTERVAL_S = 0.1
# A run's kept progress (keys.run_progress) expires this long after the run's time
# limit: deleted when the run ends, it outlives a supervisor killed mid-run only so long.
PROGRESS_KEY_MARGIN_S = 30.0


async def _run_in_child(ctx: ExperimentCtx, spec: ExperimentSpec, params: dict) -> None:
    assert ctx.control_channel is not None
    try:
        result = await load_callable(spec.main)(ctx, params)
        json.dumps(result)  # a result the browser cannot receive is the experiment's bug
        message = {"type": "result", "result": result}
    except Exception as error:
        traceback.print_exc()
        message = {"type": "error", "error": f"{type(error).__name__}: {error}"}
    # Spans reach the outbox before the answer, so a replay after the run sees them.
    shutdown_tracing()
    await ctx.control_channel.send(message)


def _runner_process(
    plan: SandboxPlan, spec: ExperimentSpec, run_id: str, params: dict, sock: socket.socket
) -> int:
    """Run one experiment; this is the whole life of the forked runner."""
    configure_logging(f"run {run_id}")
    # SIGUSR1 prints every thread's stack to the run's log: a hung run can be looked into.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sampler = AdjustableRatioSampler(1.0)
    init_tracing(
        "learner",
        sandbox_id=plan.sandbox_id,
        redis_url=plan.redis_url,
        sampler=ParentBased(sampler),
    )
    attach_run(run_id)  # every span of this run, in every service it calls, says so
    # A clean zygote is forked just before the first gRPC channel or server,
    # so ctx.fork still works after the experiment has used gRPC.
    zygotes: list[Zygote] = []
    fork_zygote_before_grpc(
        (grpc, grpc.aio), lambda: zygotes.append(Zygote(on_ratio=sampler.set_ratio))
    )
    ctx = ExperimentCtx(
        plan,
        run_id=run_id,
        experiment=spec.name,
        control_channel=ControlChannel(sock),
        sampler=sampler,
        zygote=lambda: zygotes[0] if zygotes else None,
    )
    asyncio.run(_run_in_child(ctx, spec, params))
    return 0


class ProgressRelay:
    """Forward a run's progress at most every PROGRESS_INTERVAL_S; the newest always gets out.

    An experiment may report progress per request of a load test; the browser
    needs a few updates a second, not thousands of channel-layer messages.
    """

    def __init__(
        self,
        publish: Callable[[dict], Awaitable[None]],
        *,
        sandbox_id: str,
        run_id: str,
        experiment: str,
        params: dict[str, Any],
    ) -> None:
        self._publish = publish
        self._run = {
            "sandbox_id": sandbox_id,
            "run_id": run_id,
            "experiment": experiment,
            "params": params,
        }
        self._pending: dict | None = None
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Future | None = None

    async def report(self, fraction: float, message: str) -> None:
        """Record the newest progress; send it now or when the interval allows."""
        # The run record's end state (done, failed) is the Celery task's to send.
        self._pending = messages.run_message(
            **self._run, state="running", progress=fraction, message=message
        )
        if self._timer is not None:
            return  # already due to go out, with whatever is newest then
        loop = asyncio.get_running_loop()
        wait_s = self._last_sent + PROGRESS_INTERVAL_S - loop.time()
        if wait_s <= 0:
            await self._send()
        else:
            self._timer = loop.call_later(wait_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._sending = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        if self._pending is not None:
            update, self._pending = self._pending, None
            self._last_sent = asyncio.get_running_loop().time()
            await self._publish(update)

    async def close(self) -> None:
        """Send what is still pending; nothing goes out after this."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sending is not None:
            await self._sending  # a send the timer began ends before the last one
        await self._send()


class RunManager:
    """Start runners one at a time, relay their control requests and progress, enforce timeouts.

    One run at a time per sandbox: two experiments side by side would measure
    each other. Runs wait their turn in the order they came (asyncio.Lock is
    first come, first served); the API bounds how many may wait.
    """

    def __init__(
        self,
        plan: SandboxPlan,
        services: ServiceManager,
        publish: Callable[[dict], Awaitable[None]],
        redis: aioredis.Redis,
        on_change: Callable[[], None] = lambda: None,
        nice: int = 0,
    ) -> None:
        self.plan = plan
        self.services = services
        self._publish = publish
        self._on_change = on_change  # the status names the runners
        self.active: dict[str, int] = {}
        self._turn = asyncio.Lock()
        self._closed = False
        self._nice = nice  # added to each runner's niceness (forking.fork_child)
        self._redis = redis  # the supervisor's own client: its pool is already connected

    async def run(
        self,
        run_id: str,
        experiment: str,
        params: dict[str, Any],
        *,
        on_start: Callable[[], Awaitable[None]] | None = None,
    ) -> dict:
        """Run one experiment to its end when its turn comes; return ``{"state": "done"|"failed", ...}``.

        ``on_start`` is awaited when the run's turn has come, just before its runner starts.
        """
        async with self._turn:
            if self._closed:
                return {"state": "failed", "error": "the sandbox is ending"}
            if on_start is not None:
                await on_start()
            return await self._run_now(run_id, experiment, params)

    async def _run_now(self, run_id: str, experiment: str, params: dict[str, Any]) -> dict:
        try:
            spec = self.plan.lab.experiment(experiment)
        except KeyError:
            return {"state": "failed", "error": f"this lab has no experiment named {experiment!r}"}
        # The one check of a run's parameters on this side, with the one function the API
        # uses: the API sends values it has already validated (unchanged by a second pass),
        # but tests and benchmarks call the runtime directly with a few values or none, and
        # the experiment receives every declared parameter, checked, and checks none itself.
        try:
            params = validate(spec.parameters, params)
        except ParameterError as error:
            return {"state": "failed", "error": f"{type(error).__name__}: {error}"}
        ours, theirs = socket.socketpair()
        pid = fork_child(
            lambda: _runner_process(self.plan, spec, run_id, params, theirs),
            log_path=self.plan.workdir / "logs" / f"run-{_file_safe(run_id)}.log",
            nice=self._nice,
        )
        theirs.close()
        self.active[run_id] = pid
        self._on_change()
        exited = asyncio.ensure_future(wait_exit(pid))
        progress_key = keys.run_progress(self.plan.sandbox_id, run_id)
        keep_s = math.ceil(spec.timeout_s + EXIT_GRACE_S + PROGRESS_KEY_MARGIN_S)

        async def publish(update: dict) -> None:
            # Kept before it is sent: a page opening mid-run reads the newest
            # progress on connect, and anything newer reaches it through its group.
            await self._quietly(
                lambda redis: redis.set(progress_key, json.dumps(update["run"]), ex=keep_s)
            )
            await self._publish(update)

        progress = ProgressRelay(
            publish,
            sandbox_id=self.plan.sandbox_id,
            run_id=run_id,
            experiment=experiment,
            params=dict(params or {}),
        )
        await progress.report(0.0, "started")
        try:
            async with asyncio.timeout(spec.timeout_s):
                outcome = await self._converse(ours, progress)
        except TimeoutError:
            outcome = {
                "state": "failed",
                "error": f"the experiment did not finish within {spec.timeout_s:g} s",
            }
        finally:
            ours.close()
            done, _ = await asyncio.wait({exited}, timeout=EXIT_GRACE_S)
            if not done:
                _kill(pid)
            code = await exited
            self.active.pop(run_id, None)
            self._on_change()
            await progress.close()
            await self._quietly(lambda redis: redis.delete(progress_key))
        if outcome is None:
            outcome = {
                "state": "failed",
                "error": f"the experiment's process ended (code {code}) without a result",
            }
        return outcome

    async def _converse(self, sock: socket.socket, progress: ProgressRelay) -> dict | None:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        try:
            while line := await reader.readline():
                message = json.loads(line)
                kind = message.get("type")
                if kind == "progress":
                    await progress.report(message.get("progress", 0.0), message.get("message", ""))
                elif kind == "control":
                    answer = await self._control(message)
                    writer.write(json.dumps(answer).encode() + b"\n")
                    await writer.drain()
                elif kind == "result":
                    return {"state": "done", "result": message.get("result")}
                elif kind == "error":
                    return {"state": "failed", "error": message.get("error", "unknown error")}
            return None
        finally:
            writer.close()

    async def _quietly(self, command: Callable[[aioredis.Redis], Awaitable[Any]]) -> None:
        """Send one command to Redis; a run goes on without its kept progress if Redis fails."""
        try:
            await command(self._redis)
        except (RedisError, OSError):
            log.exception("cannot keep the progress of a run of sandbox %s", self.plan.sandbox_id)

    async def _control(self, message: dict) -> dict:
        try:
            await self.services.operate(
                message.get("op", ""), message.get("service", ""), message.get("params") or {}
            )
        except Exception as error:  # the experiment gets the reason, the supervisor goes on
            return {
                "id": message.get("id"),
                "error": str(error),
                "services": self.services.states(),
            }
        return {"id": message.get("id"), "services": self.services.states()}

    def kill_all(self) -> None:
        """SIGKILL every runner and refuse the runs still waiting (the sandbox is going away)."""
        self._closed = True
        for pid in list(self.active.values()):
            _kill(pid)


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:64] or "run"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
