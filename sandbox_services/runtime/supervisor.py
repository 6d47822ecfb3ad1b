"""One sandbox's supervisor: forked by the host, it owns the sandbox's processes and events.

It forks the lab's services, answers commands from Redis, sequences every span
the sandbox's processes send (the only sequencer, so seqs are strictly
increasing and gap-free), keeps them for replay and fans them out to the
channel layer, and ends everything at the hard deadline, after the idle
timeout, when the worker's heartbeat goes silent, or on stop. It never touches
gRPC itself: it forks for its whole life (see FIELD-NOTES.md, the fork trap).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import replace
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from . import keys, messages
from .config import RuntimeConfig, configure_logging
from .plan import SandboxPlan, make_plan
from .forking import wait_exit
from .hooks import run_teardown, start_metrics
from .runs import RunManager
from .service_processes import ServiceFailed, ServiceManager
from .spans import SpanPipeline

log = logging.getLogger(__name__)

# An idle sandbox does nothing but this heartbeat (and wait on Redis for work):
# every 3 s is 20 round trips a second for a class of 60 (at 1 s, the beats of
# 60 idle supervisors were 3 % of a 2-core machine). The idle timeout and a
# silent worker are noticed this late at most; the hard deadline has a timer of
# its own, and commands never wait for a beat.
HEARTBEAT_INTERVAL_S = 3.0
ALIVE_TTL_S = 10
# A command wakes the wait at once; the timeout only bounds a dead connection's silence.
COMMAND_WAIT_S = 10
SPANS_TTL_S = 3600  # replay stays possible for an hour after the sandbox ends
STATUS_TTL_S = 3600
REPLY_TTL_S = 60
HANDLERS_GRACE_S = 3.0
# The gauges run while a browser watches or a run is in flight, and this long after.
METRICS_LINGER_S = 5.0
RUN_EVENTS_TTL_S = 3600
SHUTDOWN_BACKSTOP_S = 30  # SIGALRM ends a supervisor whose cleanup hangs


class Supervisor:
    """Run one sandbox from spawn to its final state."""

    def __init__(self, request: dict[str, Any], config: RuntimeConfig, worker: str) -> None:
        self.sandbox_id: str = request["sandbox_id"]
        self.lesson: str = request["lesson"]
        self.hard_deadline = float(request["hard_deadline"])
        self.idle_timeout_s = float(request["idle_timeout_s"])
        self.settings_overrides: dict[str, Any] = dict(request.get("settings") or {})
        self.config = config
        self.worker = worker
        self.state = "starting"
        self.reason = ""
        self.spans: SpanPipeline | None = None
        self.plan: SandboxPlan | None = None
        self.services: ServiceManager | None = None
        self.runs: RunManager | None = None
        self._metrics_pid: int | None = None
        self._metrics_exit: asyncio.Future | None = None
        self._watched = False
        # The list (keys.worker_events) of the worker process that asked for this
        # sandbox: runs sent with "events" and the sandbox's own end are reported there.
        self._report_to: str | None = request.get("report_to") or None
        self._unwanted_since: float | None = None
        self._publishing = asyncio.Lock()
        self._stop = asyncio.Event()
        self._final: tuple[str, str] = ("stopped", "")
        self._state_sent: dict | None = None  # the last state message the browsers got
        self._services_touched = False  # a service operation happened: say so even if unchanged
        self._stop_replies: list[str] = []
        self._state_dirty = asyncio.Event()
        self._port_names: dict[int, str] = {}
        self._tasks: list[asyncio.Task] = []
        self._fan_out: asyncio.Future | None = None
        self._spawn_answered = False
        self._handlers: set[asyncio.Task] = set()
        self._requested_at = float(request.get("requested_at") or time.time())
        self._timing = bool(os.environ.get("LAB_TIMING"))

    def _mark(self, phase: str) -> None:
        """Log how long after the spawn request a start-up phase ended (LAB_TIMING=1)."""
        if self._timing:
            log.info("%s +%.0f ms", phase, (time.time() - self._requested_at) * 1000)

    # -- life ------------------------------------------------------------------

    async def main(self) -> None:
        """Start the sandbox, serve it until it must end, then end it."""
        self._mark("forked")
        self.redis = aioredis.Redis.from_url(self.config.redis_url)
        self.layer = RedisChannelLayer(hosts=[self.config.redis_url])
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(
            signal.SIGTERM, self.request_stop, "stopped", "the sandbox host stopped"
        )
        loop.call_later(
            max(0.0, self.hard_deadline - time.time()),
            self.request_stop,
            "expired",
            "the sandbox reached its time limit",
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.sandbox_alive(self.sandbox_id), os.getpid(), ex=ALIVE_TTL_S, nx=True)
            pipe.set(
                keys.sandbox_touch(self.sandbox_id),
                f"{self.idle_timeout_s:g}",
                px=max(1, int(self.idle_timeout_s * 1000)),
            )
            claimed, _ = await pipe.execute()
        if not claimed:
            await self._reply(
                "spawn", {"state": "failed", "reason": "this sandbox is already running"}
            )
            return
        try:
            self._prepare()
        except Exception as error:
            log.exception("sandbox %s cannot start", self.sandbox_id)
            await self._fail_to_start(f"cannot start lesson {self.lesson!r}: {error}")
            return
        try:
            await self._serve()
            state, reason = self._final
        except Exception as error:  # our bug: still stop everything and say so
            log.exception("supervisor of %s failed", self.sandbox_id)
            state, reason = "failed", f"the sandbox supervisor failed: {error}"
        await self._end(state, reason)

    async def _serve(self) -> None:
        assert self.spans is not None
        self._mark("prepared")
        self._state_dirty.set()  # "starting" goes out while the services start
        self._tasks = [
            asyncio.ensure_future(coroutine)
            for coroutine in (
                self._heartbeat(),
                self._resilient(self._commands),
                self._resilient(self.spans.pump),
                self._resilient(self._state_publisher),
            )
        ]
        # Apart from the other loops: it must outlive them to send the last spans.
        self._fan_out = asyncio.ensure_future(self._resilient(self.spans.fan_out))
        assert self.services is not None and self.plan is not None
        # A stop (host gone, deadline) during start-up must not wait for the probes.
        starting = asyncio.ensure_future(self.services.start_all())
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        try:
            starting.result()
        except ServiceFailed as failure:
            self.request_stop("failed", str(failure))
            return
        self._mark("services ready")
        if self._stop.is_set():
            return
        self.state = "running"
        self._spawn_answered = True
        # Under the publishing lock, as every state message: a publish that took its
        # snapshot while the last service was coming up ("starting") would otherwise
        # go out after "running" and leave the page starting (seen in a fresh-clone
        # CI run: 3 of 3 services healthy, "starting" for 30 s).
        async with self._publishing:
            # Status and reply in one round trip: whoever hears "running" reads it back.
            status = self._status()
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.sandbox_status(self.sandbox_id), json.dumps(status), ex=STATUS_TTL_S)
                reply_key = keys.sandbox_reply(self.sandbox_id, "spawn")
                pipe.rpush(
                    reply_key, json.dumps({"state": "running", "services": status["services"]})
                )
                pipe.expire(reply_key, REPLY_TTL_S)
                await pipe.execute()
            self._mark("answered")
            self._state_sent = self._state_message(status)
            await self._send(self._state_sent)
        # The gauges start only when someone looks (see _sample_when_wanted).
        self._sample_when_wanted()
        await self._stop.wait()

    async def _resilient(self, loop_body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop; if Redis hiccups, log it and start the loop again."""
        while True:
            try:
                await loop_body()
            except (RedisError, OSError) as error:
                log.warning("%s: %s; retrying", loop_body.__name__, error)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("%s failed; restarting it", loop_body.__name__)
                await asyncio.sleep(0.5)

    def _prepare(self) -> None:
        self.plan = make_plan(
            sandbox_id=self.sandbox_id,
            lesson=self.lesson,
            amqp_url=self.config.amqp_url,
            redis_url=self.config.redis_url,
            workdir=self.config.workdir / self.sandbox_id,
        )
        if self.settings_overrides:  # this sandbox only; every process reads plan.lab.settings
            lab = self.plan.lab
            self.plan.lab = replace(lab, settings={**lab.settings, **self.settings_overrides})
        self._port_names = self.plan.service_of_port()
        nice = self.config.workload_nice
        self.services = ServiceManager(self.plan, self._services_changed, nice=nice)
        self.runs = RunManager(
            self.plan, self.services, self._send, self.redis, self._state_dirty.set, nice=nice
        )
        self.spans = SpanPipeline(self.redis, self.sandbox_id, self._port_names, self._send)

    def request_stop(self, state: str, reason: str) -> None:
        """End the sandbox soon with this final state, unless an end is already under way."""
        if not self._stop.is_set():
            self._final = (state, reason)
            self._stop.set()

    async def _fail_to_start(self, reason: str) -> None:
        self.state, self.reason = "failed", reason
        await self._publish_state()
        await self._reply("spawn", {"state": "failed", "reason": reason})
        await self._expire_keys()

    async def _end(self, state: str, reason: str) -> None:
        signal.alarm(SHUTDOWN_BACKSTOP_S)
        # Already ending: a further SIGTERM has nothing to add, and it could reach
        # asyncio's handler after the loop closed its wakeup pipe.
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.state, self.reason = "stopping", reason
        await _quietly(self._publish_state())
        if self.runs is not None:
            self.runs.kill_all()
        if self._metrics_pid is not None:
            _kill(self._metrics_pid)
        if self._metrics_exit is not None:
            await self._metrics_exit  # reaped, never a zombie
        if self.services is not None:
            await self.services.stop_all()
        if self.plan is not None:
            try:
                await run_teardown(self.plan)
            except Exception:
                log.exception("teardown of %s failed", self.sandbox_id)
            self.plan.release_ports()  # every listener has ended
        if self._handlers:  # runs just killed: let their callers hear how they ended
            await asyncio.wait(self._handlers, timeout=HANDLERS_GRACE_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.state, self.reason = state, reason
        # Each step on its own: with Redis down, the processes must still end.
        if self.spans is not None:
            await _quietly(self.spans.drain())
        if self._fan_out is not None:
            self._fan_out.cancel()
        await _quietly(self._publish_state())
        await _quietly(self._refuse_pending_commands())
        # Keys first: whoever hears "stopped" (or "failed") must find the sandbox gone.
        await _quietly(self._expire_keys())
        if not self._spawn_answered:  # ended before it was ever ready
            await _quietly(self._reply("spawn", {"state": "failed", "reason": reason}))
        for reply_key in self._stop_replies:
            await _quietly(self._reply_to(reply_key, {"state": state, "reason": reason}))
        if self._spawn_answered:  # the worker records it, no thread waits
            await _quietly(
                self._run_event({"event": "sandbox-ended", "state": state, "reason": reason})
            )
        if state != "failed":  # a failed sandbox keeps its logs for whoever looks into it
            shutil.rmtree(self.config.workdir / self.sandbox_id, ignore_errors=True)

    async def _expire_keys(self) -> None:
        sandbox = self.sandbox_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.expire(keys.sandbox_spans(sandbox), SPANS_TTL_S)
            pipe.expire(keys.sandbox_status(sandbox), STATUS_TTL_S)
            pipe.delete(
                keys.sandbox_alive(sandbox),
                keys.sandbox_touch(sandbox),
                keys.sandbox_commands(sandbox),
                keys.sandbox_outbox(sandbox),
            )
            await pipe.execute()

    # -- loops -----------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Refresh our heartbeat; end the sandbox at its deadline, when idle, or when orphaned."""
        sandbox = self.sandbox_id
        worker_missing_since: float | None = None
        while True:
            now = time.time()
            if now >= self.hard_deadline:  # needs no Redis: enforced even when it is down
                self.request_stop("expired", "the sandbox reached its time limit")
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(keys.sandbox_alive(sandbox), os.getpid(), ex=ALIVE_TTL_S)
                    pipe.get(keys.sandbox_touch(sandbox))
                    pipe.exists(keys.worker_alive(self.worker))
                    pipe.expire(keys.sandbox_status(sandbox), STATUS_TTL_S)
                    pipe.exists(keys.sandbox_watched(sandbox))
                    _, touched, worker_alive, _, watched = await pipe.execute()
                self._watched = bool(watched)
                if touched is not None:  # the timeout the last touch set (a taken warm one's)
                    self.idle_timeout_s = _seconds(touched, self.idle_timeout_s)
            except (RedisError, OSError) as error:
                # Unreachable Redis means an unheard worker: the same keep-alive applies.
                log.warning("heartbeat: %s", error)
                touched, worker_alive = True, False
            self._sample_when_wanted()
            if not touched:
                self.request_stop("expired", f"no activity for {self.idle_timeout_s:g} s")
            if worker_alive:
                worker_missing_since = None
            else:
                worker_missing_since = worker_missing_since or now
                if now - worker_missing_since >= self.config.keepalive_s:
                    self.request_stop("expired", "the worker running this sandbox went away")
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    async def _commands(self) -> None:
        key = keys.sandbox_commands(self.sandbox_id)
        while True:
            item = await self.redis.blpop([key], timeout=COMMAND_WAIT_S)
            if item is not None:
                # Commands run side by side (a long run must not block a fault);
                # the set keeps each task referenced until it finishes.
                task = asyncio.ensure_future(self._handle(json.loads(item[1])))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)

    async def _handle(self, command: dict) -> None:
        reply_key = keys.sandbox_reply(self.sandbox_id, str(command.get("id", "")))
        action = command.get("action")
        assert self.services is not None and self.runs is not None
        try:
            if self._stop.is_set() and action != "stop":
                raise RuntimeError("the sandbox is ending")
            if action == "stop":
                self._stop_replies.append(reply_key)
                self.request_stop("stopped", command.get("reason") or "stopped on request")
                return
            if action == "service":
                await self.services.operate(
                    command.get("op", ""), command.get("service", ""), command
                )
                answer: dict = {"state": "ok", "services": self.services.states()}
            elif action == "run":
                answer = await self._run(command)
            elif action == "status":
                answer = self._status()
            elif action == "watched":  # a browser came: sample now, not at the next beat
                sampling = self._metrics_pid is not None
                self._watched = True
                self._sample_when_wanted()
                if sampling and self.spans is not None:
                    # Gauges go out on change: the new page gets the newest at once.
                    self.spans.resend_metrics()
                answer = {"state": "ok"}
            else:
                answer = {"state": "failed", "error": f"unknown action {action!r}"}
        except Exception as error:  # a bad command is the caller's problem, never our crash
            log.exception("command %s failed", action)
            answer = {"state": "failed", "error": str(error)}
            if action == "run" and command.get("events"):  # the worker waits for its end
                await self._run_event(
                    {"event": "ended", "run_id": str(command.get("run_id", "")), **answer}
                )
        if command.get("reply", True):
            await self._reply_to(reply_key, answer)

    async def _run(self, command: dict) -> dict:
        """Run one experiment when its turn comes; with ``events``, tell the worker its start and end.

        The Celery task that sent the command did not wait: the worker hears
        the start and the end from its ``keys.worker_events`` list and records them.
        """
        assert self.runs is not None and self.spans is not None
        run_id = str(command.get("run_id", ""))
        report = bool(command.get("events"))
        since = self.spans.seq

        async def started() -> None:
            nonlocal since
            since = self.spans.seq  # the run's spans come after this
            self._sample_when_wanted()
            if report:
                await self._run_event({"event": "started", "run_id": run_id, "since": since})

        try:
            answer = await self.runs.run(
                run_id,
                str(command.get("experiment", "")),
                command.get("params") or {},
                on_start=started,
            )
        except Exception as error:
            log.exception("run %s failed", run_id)
            answer = {"state": "failed", "error": str(error)}
        if report:
            await self._run_event({"event": "ended", "run_id": run_id, "since": since, **answer})
        return answer

    async def _run_event(self, event: dict) -> None:
        """Push a run's start or end, or the sandbox's end, to the worker that started us."""
        key = self._report_to
        if key is None:  # started by a test or a benchmark: nobody listens
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, json.dumps({**event, "sandbox_id": self.sandbox_id}, default=str))
                pipe.expire(key, RUN_EVENTS_TTL_S)
                await pipe.execute()
        except (RedisError, OSError):  # the worker's reconcile fails the run in time
            log.exception("cannot report run %s to the worker", event.get("run_id"))

    # -- gauges only while someone looks ---------------------------------------

    def _sample_when_wanted(self) -> None:
        """Run the lab's metrics process while watched or running an experiment, else none.

        An idle sandbox then does nothing but its heartbeat: a metrics hook
        polled every second by 60 idle sandboxes kept a 2-core machine a
        quarter busy.
        """
        if self.state != "running" or self._stop.is_set() or self.plan is None:
            return
        wanted = self._watched or bool(self.runs and self.runs.active)
        if wanted:
            self._unwanted_since = None
            if self._metrics_pid is None and self._metrics_exit is None:
                self._start_metrics()
            return
        if self._metrics_pid is None:
            return
        now = time.monotonic()
        self._unwanted_since = self._unwanted_since or now
        if now - self._unwanted_since >= METRICS_LINGER_S:
            _kill(self._metrics_pid)  # its reaper clears the pid

    def _start_metrics(self) -> None:
        assert self.plan is not None
        pid = start_metrics(self.plan, nice=self.config.workload_nice)
        if pid is None:
            return
        self._metrics_pid = pid
        self._metrics_exit = asyncio.ensure_future(self._reap_metrics(pid))
        self._state_dirty.set()  # the status names it

    async def _reap_metrics(self, pid: int) -> None:
        await wait_exit(pid)
        self._metrics_pid, self._metrics_exit = None, None
        self._state_dirty.set()

    def _services_changed(self) -> None:
        self._services_touched = True
        self._state_dirty.set()

    async def _state_publisher(self) -> None:
        # Coalesce bursts of service changes into one state message.
        while True:
            await self._state_dirty.wait()
            self._state_dirty.clear()
            await self._publish_state()

    # -- spans and messages ----------------------------------------------------

    async def _send(self, message: dict) -> None:
        try:
            await self.layer.group_send(keys.channel_group(self.sandbox_id), message)
        except Exception:  # the browser misses a message; replay still has the spans
            log.exception("group_send to sandbox %s failed", self.sandbox_id)

    def _state_message(self, status: dict) -> dict:
        # The browsers' shape, the same the Celery tasks send (runtime/messages.py).
        return messages.sandbox_state_message(
            sandbox_id=self.sandbox_id,
            lesson=self.lesson,
            state=status["state"],
            reason=status["reason"],
            services=status["services"],
            worker=self.worker,
            expires_at=self.hard_deadline,
        )

    def _status(self) -> dict:
        """Return the status kept in Redis: the browsers' fields plus what operators need."""
        return {
            "id": self.sandbox_id,
            "lesson": self.lesson,
            "state": self.state,
            "reason": self.reason,
            "services": self.services.states() if self.services else {},
            "expires_at": self.hard_deadline,
            "worker": self.worker,
            "pid": os.getpid(),
            # Every other process of the sandbox, for operators and the memory benchmark.
            "metrics_pid": self._metrics_pid,
            "runner_pids": sorted(self.runs.active.values()) if self.runs else [],
            "seq": self.spans.seq if self.spans else 0,
            "updated_at": time.time(),
        }

    async def _publish_state(self) -> None:
        # One at a time, snapshot taken inside: messages never go out of order.
        async with self._publishing:
            await self._publish_state_now()

    async def _publish_state_now(self) -> None:
        status = self._status()
        await self.redis.set(
            keys.sandbox_status(self.sandbox_id), json.dumps(status), ex=STATUS_TTL_S
        )
        # Runner and gauge pids change the status, not what a browser shows: a
        # class running at once sent five state messages a run, most of them the
        # same. A service operation is always answered, changed or not.
        message = self._state_message(status)
        if message != self._state_sent or self._services_touched:
            self._state_sent, self._services_touched = message, False
            await self._send(message)

    async def _reply(self, command_id: str, answer: dict) -> None:
        if command_id == "spawn":
            self._spawn_answered = True
        await self._reply_to(keys.sandbox_reply(self.sandbox_id, command_id), answer)

    async def _reply_to(self, reply_key: str, answer: dict) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(reply_key, json.dumps(answer, default=str))
            pipe.expire(reply_key, REPLY_TTL_S)
            await pipe.execute()

    async def _refuse_pending_commands(self) -> None:
        key = keys.sandbox_commands(self.sandbox_id)
        while raw := await self.redis.lpop(key):
            command = json.loads(raw)
            await self._reply(
                str(command.get("id", "")), {"state": "failed", "error": "the sandbox has ended"}
            )


async def _quietly(step: Awaitable[None]) -> None:
    try:
        await step
    except Exception:
        log.exception("while ending the sandbox")


def _seconds(value: bytes | str, fallback: float) -> float:
    """Read a timeout a touch key holds; keep ``fallback`` for anything else."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return fallback
    return seconds if math.isfinite(seconds) and seconds > 0 else fallback


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_supervisor(request: dict[str, Any], config: RuntimeConfig, worker: str) -> int:
    """Run a supervisor in this (freshly forked) process; return its exit code."""
    configure_logging(f"supervisor {str(request.get('sandbox_id', '?'))[:8]}")
    asyncio.run(Supervisor(request, config, worker).main())
    return 0
