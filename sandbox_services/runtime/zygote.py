"""Keep ``ctx.fork`` working after a runner has used gRPC.

A process that has used gRPC cannot fork safely: the child hangs or crashes
(measured here with grpc.aio: a plain child took 2-4 s to finish, a child that
dialled gRPC died with SIGSEGV; GRPC_ENABLE_FORK_SUPPORT does not cover aio).
So a runner forks a *zygote* just before its first gRPC channel or server, while
it is still clean. After that, ``ctx.fork`` asks the zygote to fork the worker:
the function and its arguments travel pickled (a module-level function and
plain arguments), the result comes back as JSON through a pipe whose write end
is passed with SCM_RIGHTS.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pickle
import signal
import socket
import struct
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .forking import fork_child, read_until_eof
from .tracing import shutdown_tracing

_HEADER = struct.Struct(">I")


class Zygote:
    """A clean fork of the runner that forks workers on request."""

    def __init__(self, on_ratio: Callable[[float], None] | None = None) -> None:
        self._on_ratio = on_ratio
        ours, theirs = socket.socketpair()
        self.pid = fork_child(lambda: self._serve(theirs))
        theirs.close()
        self._socket = ours

    def _serve(self, sock: socket.socket) -> int:
        # Workers are never waited for here: let the kernel reap them.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        # What the runner built before this fork stays put in every worker (see host).
        gc.freeze()
        while True:
            # The pipe's write end rides on the first bytes of each request.
            head, descriptors, _, _ = socket.recv_fds(sock, _HEADER.size, 1)
            if not head:
                return 0
            head += _receive_exactly(sock, _HEADER.size - len(head))
            message = _receive_exactly(sock, _HEADER.unpack(head)[0])
            write_end = descriptors[0]
            fork_child(lambda message=message, write_end=write_end: self._work(message, write_end))
            os.close(write_end)

    def _work(self, message: bytes, write_end: int) -> int:
        try:
            ratio, function, args = pickle.loads(message)
            if self._on_ratio is not None:
                self._on_ratio(ratio)
            result = function(*args)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            payload = json.dumps({"result": result})
        except BaseException as error:  # the runner gets the message, not a hang
            traceback.print_exc()
            payload = json.dumps({"error": f"{type(error).__name__}: {error}"})
        # Flush spans before answering: the runner may exit on the answer, and
        # this worker dies with the zygote, which dies with the runner.
        shutdown_tracing()
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(payload)
        return 0

    async def run(self, ratio: float, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in a worker forked by the zygote; return its JSON result."""
        try:
            message = pickle.dumps((ratio, function, args))
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise RuntimeError(
                "after gRPC was used in this run, ctx.fork needs a module-level function "
                f"and picklable arguments: {error}"
            ) from None
        read_end, write_end = os.pipe()
        request = _HEADER.pack(len(message)) + message
        try:
            sent = socket.send_fds(self._socket, [request], [write_end])
            self._socket.sendall(request[sent:])
        finally:
            os.close(write_end)
        data = await read_until_eof(read_end)
        if not data:
            raise RuntimeError(
                f"forked {getattr(function, '__name__', function)} ended without a result"
            )
        answer = json.loads(data)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 16))
        if not chunk:
            raise ConnectionError("the runner went away mid-request")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


_FACTORIES = ("insecure_channel", "secure_channel", "server")


def fork_zygote_before_grpc(modules: tuple[ModuleType, ...], start: Callable[[], None]) -> None:
    """Call ``start()`` once, just before the first gRPC channel or server is made."""
    started = False

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            nonlocal started
            if not started:
                started = True
                start()
            return factory(*args, **kwargs)

        return guarded

    for module in modules:
        for name in _FACTORIES:
            if hasattr(module, name):
                setattr(module, name, wrap(getattr(module, name)))
