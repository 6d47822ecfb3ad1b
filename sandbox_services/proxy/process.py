"""One HAProxy process in master-worker mode: start, check, reload without a lost request, stop.

The master (``-W``) stays our child and holds the listening sockets; a reload
(``reload`` on its master CLI, ``-S``) starts a new worker on the same
sockets with the new configuration while the old worker finishes what it
has in flight. The kernel sends the master SIGTERM if whoever started it
dies, so a killed control plane leaves no proxy behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from sandbox_services.runtime.forking import set_parent_death_signal

from . import runtime_api
from .binary import require_haproxy

START_TIMEOUT_S = 5.0
RELOAD_TIMEOUT_S = 5.0
STOP_GRACE_S = 2.0


class ConfigInvalid(ValueError):
    """HAProxy refused a configuration; the message is its own."""


def _die_with_parent() -> None:
    set_parent_death_signal(signal.SIGTERM)


def check_config(config_text: str, path: Path, *, binary: str | None = None) -> None:
    """Ask HAProxy itself whether a configuration is valid (``haproxy -c``); raise ConfigInvalid."""
    binary = binary or require_haproxy()
    candidate = path.with_suffix(".check.cfg")
    candidate.write_text(config_text)
    try:
        result = subprocess.run(
            [binary, "-c", "-f", str(candidate)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    finally:
        candidate.unlink(missing_ok=True)
    if result.returncode != 0:
        alerts = [line for line in (result.stdout + result.stderr).splitlines() if "ALERT" in line]
        raise ConfigInvalid("\n".join(alerts) or (result.stderr or result.stdout).strip())


class HAProxyProcess:
    """A HAProxy master and its worker, with a config file, a master CLI and a stats socket.

    The configuration must declare ``stats socket <stats_socket> level admin``
    in its global section (``proxy.config.global_section`` does).
    """

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path = self.directory / f"{name}.cfg"
        self.master_socket = self.directory / f"{name}.master.sock"
        self.stats_socket = self.directory / f"{name}.stats.sock"
        self.log_path = self.directory / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.config_text = ""
        self.reloads = 0

    @property
    def pid(self) -> int | None:
        """Return the master's pid (None when not running)."""
        return self.process.pid if self.process and self.process.returncode is None else None

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's children (the current worker, and old ones finishing)."""
        if self.pid is None:
            return []
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    async def start(self, config_text: str) -> None:
        """Write the configuration, start the master, and wait until a worker answers."""
        binary = require_haproxy()
        self.config_path.write_text(config_text)
        self.config_text = config_text
        self.stats_socket.unlink(missing_ok=True)
        self.master_socket.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                binary,
                "-W",
                "-S",
                f"{self.master_socket},mode,600",
                "-f",
                str(self.config_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        await self._wait_for_worker(None, START_TIMEOUT_S)

    async def _wait_for_worker(self, old_worker: int | None, timeout_s: float) -> int:
        """Wait until the stats socket is answered by a worker other than ``old_worker``."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process is None or self.process.returncode is not None:
                raise RuntimeError(f"haproxy {self.name} exited; see {self.log_path}")
            try:
                info = await runtime_api.command(self.stats_socket, "show info", timeout_s=1)
                pid = next(
                    (
                        int(line.split(":")[1])
                        for line in info.splitlines()
                        if line.startswith("Pid:")
                    ),
                    None,
                )
                if pid is not None and pid != old_worker:
                    return pid
            except (TimeoutError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy {self.name} did not answer in {timeout_s:g} s")
            await asyncio.sleep(0.005)

    async def current_worker(self) -> int | None:
        """Return the pid of the worker that answers the stats socket now."""
        try:
            info = await runtime_api.command(self.stats_socket, "show info", timeout_s=1)
        except (TimeoutError, OSError):
            return None
        for line in info.splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":")[1])
        return None

    async def reload(self, config_text: str) -> float:
        """Check and apply a new configuration hitlessly; return the milliseconds it took.

        A configuration HAProxy refuses raises ConfigInvalid and leaves the running one.
        """
        started = time.monotonic()
        await asyncio.to_thread(check_config, config_text, self.config_path)
        old_worker = await self.current_worker()
        temporary = self.config_path.with_suffix(".cfg.tmp")
        temporary.write_text(config_text)
        temporary.replace(self.config_path)
        self.config_text = config_text
        try:
            await runtime_api.command(self.master_socket, "reload", timeout_s=RELOAD_TIMEOUT_S)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the master closes its CLI as it re-executes: expected
        await self._wait_for_worker(old_worker, RELOAD_TIMEOUT_S)
        self.reloads += 1
        return (time.monotonic() - started) * 1000

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the master and its workers (SIGTERM, then SIGKILL after the grace)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), grace_s)
        except ProcessLookupError:
            pass
        except TimeoutError:
            for pid in self.worker_pids():
                _kill(pid)
            process.kill()
            await process.wait()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
