"""The sandbox host: a warm parent that forks one supervisor per sandbox.

``python -m sandbox_services.runtime.host --name WORKER`` imports the whole
service stack once (about half a second), so that every later fork starts warm
in milliseconds. It must never create a gRPC channel or server: a forked child
of a process that used gRPC hangs (FIELD-NOTES.md). It never imports Django.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import pkgutil
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import redis

from . import keys
from .config import RuntimeConfig, configure_logging, load_config
from .forking import exit_code, fork_child
from .plan import lesson_packages

log = logging.getLogger("sandbox_services.host")

STACK = (
    "asyncio",
    "json",
    "sqlite3",
    "grpc",
    "grpc.aio",
    "grpc_health.v1.health",
    "grpc_health.v1.health_pb2_grpc",
    "aiohttp",
    "aiohttp.web",
    "pika",
    "redis.asyncio",
    "channels_redis.core",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "sandbox_services.runtime.tracing",
    "sandbox_services.runtime.supervisor",
    "sandbox_services.runtime.serve",
)
STOP_GRACE_S = 5.0
SPAWN_WAIT_S = 1.0
_SANDBOX_ID = re.compile(r"[0-9a-f]{32}")


def warm_imports() -> None:
    """Import the service stack and every lab module, so forks start with them loaded."""
    for name in STACK:
        importlib.import_module(name)
    for package_name in lesson_packages():
        try:
            package = importlib.import_module(package_name)
            for module in pkgutil.walk_packages(
                package.__path__, prefix=f"{package_name}.", onerror=lambda name: None
            ):
                importlib.import_module(module.name)
        except Exception as error:  # a broken lab must not take the other labs down
            log.warning("cannot import %s: %s", package_name, error)
    # channels_redis imports django.conf as a library; what must never happen
    # here is Django being configured (settings loaded, apps set up).
    if "django.conf" in sys.modules and sys.modules["django.conf"].settings.configured:
        log.warning("a lab module configured Django; the host should stay free of it")


def warm_tracing() -> None:
    """Instrument the libraries and make one resource here, so forks start with both done."""
    from opentelemetry.sdk.resources import Resource

    from .tracing import instrument_libraries

    instrument_libraries()
    Resource.create({})  # the first call finds the resource detectors (~3 ms); forks inherit them


def sweep_workdirs(workdir: Path, client: redis.Redis, *, older_than_s: float = 3600) -> list[str]:
    """Remove the directories of sandboxes that ended long ago without cleaning up; name them."""
    removed = []
    if not workdir.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for path in workdir.iterdir():
        if not _SANDBOX_ID.fullmatch(path.name) or not path.is_dir():
            continue
        # A failed sandbox keeps its logs for a while; a live one is never touched.
        if path.stat().st_mtime < cutoff and not client.exists(keys.sandbox_alive(path.name)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


class Host:
    """Wait for spawn requests; fork a supervisor for each; reap them."""

    def __init__(self, name: str, config: RuntimeConfig) -> None:
        self.name = name
        self.config = config
        self.redis = redis.Redis.from_url(config.redis_url)
        self.supervisors: dict[int, str] = {}

    def serve(self) -> None:
        """Serve spawn requests until the worker heartbeat is missing for the keep-alive time."""
        spawn_key = keys.host_spawn(self.name)
        missing_since: float | None = None
        while True:
            try:
                # A push wakes the wait at once; the timeout spaces the reaping and the
                # worker check (at 0.5 s, with a waitpid per supervisor, the host of 60
                # idle sandboxes was the busiest idle process of the lab).
                item = self.redis.blpop([spawn_key], timeout=SPAWN_WAIT_S)
                if item is not None:
                    self._spawn(json.loads(item[1]))
                worker_alive = self.redis.exists(keys.worker_alive(self.name))
            except (redis.RedisError, OSError) as error:
                # Unreachable Redis means an unheard worker: the same keep-alive applies.
                log.warning("redis: %s", error)
                worker_alive = False
                time.sleep(0.5)
            except ValueError as error:
                log.warning("ignoring a malformed spawn request: %s", error)
                continue
            self.reap()
            if worker_alive:
                missing_since = None
            else:
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since >= self.config.keepalive_s:
                    log.info(
                        "worker %s heartbeat silent for %s s; host exits",
                        self.name,
                        self.config.keepalive_s,
                    )
                    return

    def _spawn(self, request: dict) -> None:
        from .supervisor import run_supervisor

        sandbox_id = str(request.get("sandbox_id", ""))
        if not _SANDBOX_ID.fullmatch(sandbox_id):
            log.warning("ignoring a spawn request with a bad sandbox id %r", sandbox_id)
            return
        if time.time() > float(request.get("answer_by") or float("inf")):
            log.warning("sandbox %s: dropping a spawn request nobody waits for", sandbox_id)
            return
        # SIGTERM, not SIGKILL: a supervisor whose host died still stops its
        # services, runs teardown and publishes its final state.
        pid = fork_child(
            lambda: run_supervisor(request, self.config, self.name), death_signal=signal.SIGTERM
        )
        self.supervisors[pid] = sandbox_id
        log.info("sandbox %s: supervisor %d", sandbox_id, pid)

    def reap(self) -> None:
        """Collect every exited supervisor so none stays a zombie (one call per exited child)."""
        while self.supervisors:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:  # no child left at all: none of ours can be running
                for pid, sandbox_id in self.supervisors.items():
                    log.info("sandbox %s: supervisor %d gone", sandbox_id, pid)
                self.supervisors.clear()
                return
            if pid == 0:
                return
            sandbox_id = self.supervisors.pop(pid, None)
            if sandbox_id is not None:
                log.info(
                    "sandbox %s: supervisor %d exited (%d)", sandbox_id, pid, exit_code(status)
                )

    def stop_supervisors(self) -> None:
        """SIGTERM every supervisor, wait for them a little, SIGKILL the rest."""
        for pid in self.supervisors:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.supervisors and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in self.supervisors:
            _signal(pid, signal.SIGKILL)
        while self.supervisors:
            self.reap()
            time.sleep(0.01)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the host for one worker until its heartbeat is gone or it is told to stop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the Celery worker's name")
    args = parser.parse_args(argv)
    configure_logging("host")
    config = load_config()
    # Inherited from the Celery worker; without it nothing here can load Django settings.
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    started = time.monotonic()
    warm_imports()
    warm_tracing()
    # Everything imported so far lives as long as the host: move it out of the
    # collector's reach. Forks inherit that, so a full collection in a service or
    # a load generator walks only what the child made itself, and reading the
    # parent's objects no longer dirties their pages (less copy-on-write memory).
    gc.collect()
    gc.freeze()
    log.info(
        "host for %s warm in %.2f s (pid %d)", args.name, time.monotonic() - started, os.getpid()
    )
    host = Host(args.name, config)
    try:
        swept = sweep_workdirs(config.workdir, host.redis)
        if swept:
            log.info("removed %d directories of long-gone sandboxes", len(swept))
    except (OSError, redis.RedisError) as error:
        log.warning("cannot sweep %s: %s", config.workdir, error)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        host.serve()
    except _Stop:
        log.info("host for %s told to stop", args.name)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        host.stop_supervisors()
    return 0


if __name__ == "__main__":
    sys.exit(main())
