#!/usr/bin/env python3
"""Run daphne, the two Celery workers (control and runs) and Celery beat together in the foreground.

`make run` calls this after preflight, migrations and checks. Each process's
output is printed with its name in front. Ctrl-C (SIGINT) or SIGTERM stops all
four (a second Ctrl-C stops them at once); so does any one of them exiting,
since the lab is useless without it.

Each child runs in its own session, so a Ctrl-C reaches only this script, which
then stops the children in order and waits for them (a Celery worker finishes
its running tasks on SIGTERM); whatever is still alive after the grace period
is killed with its whole process group. The children also get SIGTERM if this
script dies without a chance to clean up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 15.0
PR_SET_PDEATHSIG = 1
COLOURS = ["\033[36m", "\033[33m", "\033[35m"]
RESET = "\033[0m"


@dataclass
class Child:
    """One supervised process: its name, command and, once started, its Popen."""

    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None)


def lab_commands(*, host: str, port: int) -> list[Child]:
    """Return the four processes of a running lab."""
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "lab"]
    schedule = str(PROJECT_ROOT / "var" / "celerybeat-schedule")
    runs_queue = os.environ.get("LAB_CELERY_QUEUE", "celery")
    control_queue = f"{runs_queue}-control"  # settings.LAB_CELERY_CONTROL_QUEUE
    return [
        Child("web", [python, "-m", "daphne", "-b", host, "-p", str(port), "lab.asgi:application"]),
        # Two workers, so no number of runs delays a start: "worker" starts and stops
        # sandboxes (it owns the sandbox host) and "runs" hands runs over and records
        # them. Threads, since start tasks wait on Redis for a sandbox's answer.
        Child(
            "worker",
            [*celery, *f"worker -l info -n worker1@%h -Q {control_queue} -P threads -c 8".split()],
        ),
        Child(
            "runs",
            [*celery, *f"worker -l info -n runs1@%h -Q {runs_queue} -P threads -c 4".split()],
        ),
        Child("beat", [*celery, "beat", "-l", "info", "-s", schedule]),
    ]


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def exposure_problems(host: str, environ: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return (warnings, refusals) for serving on ``host`` with this environment.

    On loopback the lab is the developer's own. Anywhere else others may reach
    it: DEBUG's error pages would show them the code and settings, and the
    development secret key would let them forge sessions, so both are refused.
    """
    if is_loopback(host):
        return [], []
    warnings = [
        f"serving on {host}, not loopback: anyone who reaches this machine can use the lab,"
        " over plain HTTP (put a TLS proxy in front and set DJANGO_BEHIND_TLS_PROXY=1)"
    ]
    refusals = []
    if environ.get("DJANGO_DEBUG", "1").strip().lower() in {"1", "true", "yes", "on"}:
        refusals.append("DEBUG is on (the default): set DJANGO_DEBUG=0")
    if not environ.get("DJANGO_SECRET_KEY"):
        refusals.append(
            "DJANGO_SECRET_KEY is not set (the development key is public): set it to"
            " the output of python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    return warnings, refusals


def die_with_parent() -> None:
    """Ask the kernel to send SIGTERM to this child when its parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ProcessGroup:
    """Start the children, relay their output, and stop them all together."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stop_requested = threading.Event()
        self.kill_requested = threading.Event()
        self.print_lock = threading.Lock()
        self.width = max(len(child.name) for child in children)
        self.colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        self.relays: list[threading.Thread] = []

    def say(self, name: str, line: str, index: int | None = None) -> None:
        prefix = f"{name:<{self.width}} | "
        if self.colour and index is not None:
            prefix = f"{COLOURS[index % len(COLOURS)]}{prefix}{RESET}"
        with self.print_lock:
            sys.stdout.write(prefix + line + "\n")
            sys.stdout.flush()

    def relay(self, index: int, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        for raw in iter(child.process.stdout.readline, b""):
            self.say(child.name, raw.decode("utf-8", "replace").rstrip("\n"), index)

    def start(self) -> None:
        """Start every child, then one thread per child to relay its output."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # All children are forked before any thread exists, which keeps
        # preexec_fn safe (a fork while another thread holds a lock is not).
        for child in self.children:
            child.process = subprocess.Popen(
                child.command,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # safe: no threads yet, see above
            )
        for index, child in enumerate(self.children):
            relay = threading.Thread(target=self.relay, args=(index, child), daemon=True)
            relay.start()
            self.relays.append(relay)
            self.say("lab", f"started {child.name} (pid {child.process.pid})")

    def run(self, after_start: Callable[[], None] = lambda: None) -> int:
        """Start the children and supervise them until a signal or an exit; return the code."""

        def request_stop(signum: int, _frame: object) -> None:
            # A second Ctrl-C while stopping means: do not wait any longer.
            if self.stop_requested.is_set():
                self.kill_requested.set()
            self.stop_requested.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.start()
        after_start()
        code = self.wait()
        self.stop()
        self.say("lab", "stopped")
        return code

    def wait(self) -> int:
        """Block until a signal arrives or a child exits; return that child's code or 0."""
        while not self.stop_requested.wait(0.2):
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    self.say("lab", f"{child.name} exited with code {code}; stopping the others")
                    return code or 1
        return 0

    def stop(self) -> None:
        """SIGTERM every child, wait up to GRACE_SECONDS (or a second Ctrl-C), then SIGKILL."""
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            self.say("lab", f"stopping {child.name}")
            signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while time.monotonic() < deadline and not self.kill_requested.is_set():
            if all(child.process.poll() is not None for child in running if child.process):
                break
            time.sleep(0.1)
        for child in running:
            if child.process and child.process.poll() is None:
                self.say("lab", f"{child.name} is still running; killing it")
        for child in self.children:
            # Kill the whole group: stragglers a child left behind go with it.
            signal_group(child, signal.SIGKILL)
            if child.process:
                child.process.wait()
        for relay in self.relays:
            relay.join(timeout=2.0)

    def announce_when_listening(self, *, host: str, port: int, url: str) -> None:
        """Print the lab's URL once daphne accepts connections."""
        deadline = time.monotonic() + 60.0
        while not self.stop_requested.is_set() and time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
            except OSError:
                time.sleep(0.2)
                continue
            self.say("lab", f"The lab is ready at {url} (Ctrl-C stops it)")
            return
        if not self.stop_requested.is_set():
            self.say(
                "lab", f"daphne is not listening on {host}:{port} after 60 s; see web's output"
            )


def signal_group(child: Child, signum: int) -> None:
    """Send signum to the child's process group, ignoring a group that is gone."""
    if child.process is None:
        return
    try:
        os.killpg(child.process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address daphne binds")
    parser.add_argument("--port", type=int, default=8000, help="port daphne listens on")
    arguments = parser.parse_args(argv)

    warnings, refusals = exposure_problems(arguments.host, dict(os.environ))
    for warning in warnings:
        print(f"run_lab: warning: {warning}", file=sys.stderr)
    if refusals:
        for refusal in refusals:
            print(f"run_lab: refusing to serve on {arguments.host}: {refusal}", file=sys.stderr)
        return 2

    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    processes = ProcessGroup(lab_commands(host=arguments.host, port=arguments.port))
    local_host = "127.0.0.1" if arguments.host in {"0.0.0.0", "::"} else arguments.host
    url = f"http://{local_host}:{arguments.port}/"

    def announce() -> None:
        processes.say("lab", f"starting; the lab will be at {url}")
        threading.Thread(
            target=processes.announce_when_listening,
            kwargs={"host": local_host, "port": arguments.port, "url": url},
            daemon=True,
        ).start()

    return processes.run(after_start=announce)


if __name__ == "__main__":
    sys.exit(main())
