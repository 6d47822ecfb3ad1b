"""The shared fault table: written by the supervisor, read by forked services with no I/O."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from sandbox_services.runtime.faults import ServiceTable, SharedFaults
from sandbox_services.runtime.spec import InjectedFault


def test_a_forked_child_sees_faults_written_after_the_fork():
    table = ServiceTable(["echo", "greeter"])
    pid = os.fork()
    if pid == 0:  # the child: wait for the parent's write, exit 0 once seen
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if table.faults("greeter") == (250.0, 0.5):
                os._exit(0)
            time.sleep(0.005)
        os._exit(1)
    table.set_faults("greeter", delay_ms=250)
    table.set_faults("greeter", error_rate=0.5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert table.faults("echo") == (0.0, 0.0)


def test_running_replicas_are_tracked_per_service():
    table = ServiceTable(["echo"])
    table.set_running("echo", 0, True)
    table.set_running("echo", 2, True)
    table.set_faults("echo", delay_ms=5)  # faults and replicas share a slot, never clobber
    assert table.running("echo") == [0, 2]
    table.set_running("echo", 0, False)
    assert table.running("echo") == [2]


def test_apply_delays_then_raises_at_the_error_rate():
    table = ServiceTable(["echo"])
    faults = SharedFaults(table, "echo")
    table.set_faults("echo", delay_ms=50, error_rate=1.0)
    started = time.monotonic()
    with pytest.raises(InjectedFault, match="injected"):
        asyncio.run(faults.apply())
    assert time.monotonic() - started >= 0.05
    table.set_faults("echo", delay_ms=0, error_rate=0)
    asyncio.run(faults.apply())
