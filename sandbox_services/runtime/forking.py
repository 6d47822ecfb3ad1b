"""Fork child processes that die with their parent and never run the parent's cleanup.

Every process of a sandbox is a fork of the warm host: the host forks a
supervisor, the supervisor forks services and runners, a runner forks load
generators. Each child asks the kernel for a signal when its parent dies
(PR_SET_PDEATHSIG), so no process outlives the one that started it, and leaves
through ``os._exit`` so it never runs the parent's atexit handlers or finally
blocks further up the copied stack.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .tracing import shutdown_tracing
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Resolved once here: worker.py calls it from a preexec_fn, between fork and
# exec of a threaded process, where the less that happens the better.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_prctl.restype = ctypes.c_int


def set_parent_death_signal(signum: int) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent thread dies."""
    if _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _reset_inherited_state() -> None:
    # The parent's asyncio loop may have routed signals to its self-pipe;
    # the child must not wake the parent's loop nor run its handlers.
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, signal.SIG_DFL)
    signal.alarm(0)


def _redirect_output(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def fork_child(
    target: Callable[[], int | None],
    *,
    death_signal: int = signal.SIGKILL,
    log_path: Path | None = None,
    nice: int = 0,
) -> int:
    """Fork; run ``target()`` in the child and exit with its code. Return the child's pid.

    ``nice`` is added to the child's niceness. The supervisor gives it to the
    sandbox's workload (services, runners, gauges): when a class runs
    experiments at once and the CPUs are all busy, the processes that carry
    spans to the browser (supervisor, Redis, daphne) still get the CPU first,
    so the live view keeps up; the experiments slow a little instead. Any
    process may lower its own priority; none raises it back.
    """
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        set_parent_death_signal(death_signal)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        _reset_inherited_state()
        if nice:
            os.nice(nice)
        if log_path is not None:
            _redirect_output(log_path)
        code = target() or 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            shutdown_tracing()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")


def exit_code(status: int) -> int:
    """Return a wait status as an exit code, negative for a signal (as subprocess does)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


async def wait_exit(pid: int) -> int:
    """Wait without blocking the loop (or using SIGCHLD) for a child to exit; reap it."""
    loop = asyncio.get_running_loop()
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        descriptor = None
    if descriptor is not None:
        exited = loop.create_future()
        loop.add_reader(descriptor, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(descriptor)
            os.close(descriptor)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0  # someone else reaped it
    return exit_code(status)


async def read_until_eof(descriptor: int) -> bytes:
    """Read a pipe to its end without blocking the loop, then close it."""
    loop = asyncio.get_running_loop()
    os.set_blocking(descriptor, False)
    chunks: list[bytes] = []
    done = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(descriptor, 65536)
        except BlockingIOError:
            return
        if chunk:
            chunks.append(chunk)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(descriptor, readable)
    try:
        await done
    finally:
        loop.remove_reader(descriptor)
        os.close(descriptor)
    return b"".join(chunks)


async def run_forked(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` (sync or async) in a forked child; return its JSON result."""
    read_end, write_end = os.pipe()

    def child() -> int:
        os.close(read_end)
        try:
            result = function(*args)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            payload = json.dumps({"result": result})
        except BaseException as error:  # the parent gets the message, not a hang
            traceback.print_exc()
            payload = json.dumps({"error": f"{type(error).__name__}: {error}"})
        shutdown_tracing()  # spans first: they are in the outbox before the answer
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(payload)
        return 0

    pid = fork_child(child)
    os.close(write_end)
    data = await read_until_eof(read_end)
    code = await wait_exit(pid)
    if not data:
        raise RuntimeError(f"forked {getattr(function, '__name__', function)} exited with {code}")
    answer = json.loads(data)
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]
