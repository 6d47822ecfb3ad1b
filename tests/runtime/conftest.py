"""Fixtures that run the real sandbox runtime: a host process and a worker heartbeat.

The host comes from ``sandbox_services.runtime.launcher`` (the one way to run
it): it starts in its own session, so ending its process group ends every
supervisor, service and runner it forked, even when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Database 1: tests never meet a development lab on database 0.
os.environ["REDIS_URL"] = os.environ.get("LAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ["LAB_KEEPALIVE_SECONDS"] = "3"
os.environ.setdefault("LAB_WORKDIR", str(ROOT / "var" / "sandboxes-runtime-test"))

from sandbox_services.runtime.launcher import LaunchedHost, launch_host, running_host  # noqa: E402
from tests.sandboxes import wait_until  # noqa: E402

__all__ = ["KEEPALIVE_S", "ROOT", "LaunchedHost", "process_gone", "running_host", "wait_until"]

KEEPALIVE_S = 3.0


def process_gone(pid: int) -> bool:
    """Tell whether a pid no longer exists at all (a zombie still counts as present)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def shared_host() -> Iterator[LaunchedHost]:
    """One host for the tests of a module that leave it running."""
    with running_host() as host:
        yield host


@pytest.fixture
def fresh_host() -> Iterator[LaunchedHost]:
    """A host of the test's own, for tests that kill it or silence its worker."""
    with running_host() as host:
        yield host


@pytest.fixture
def host_with_env() -> Iterator[Callable[[dict[str, str]], LaunchedHost]]:
    """Start hosts with extra environment variables; end them all afterwards."""
    started: list[LaunchedHost] = []

    def start(extra_env: dict[str, str]) -> LaunchedHost:
        started.append(launch_host(extra_env=extra_env))
        return started[-1]

    try:
        yield start
    finally:
        for host in started:
            host.stop()
