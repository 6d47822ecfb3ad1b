"""The tests' handle over a real sandbox (tests/sandboxes.py) on the selftest lab."""

from __future__ import annotations

import urllib.request

import pytest

from sandbox_services.runtime import client
from tests.sandboxes import RunFailed, SandboxError


def test_a_module_shares_one_sandbox_per_lesson(lesson_sandbox):
    first = lesson_sandbox("selftest")
    assert lesson_sandbox("selftest") is first
    assert first.status()["state"] == "running"


def test_addresses_reach_the_services_themselves(lesson_sandbox):
    sandbox = lesson_sandbox("selftest")
    with urllib.request.urlopen(f"http://{sandbox.address('echo')}/healthz", timeout=5) as answer:
        assert answer.status == 200
    assert sandbox.addresses("echo") == [sandbox.address("echo")]
    with pytest.raises(LookupError):
        sandbox.address("listener")  # an AMQP service listens on no port


def test_run_returns_the_result_and_raises_when_the_run_failed(lesson_sandbox):
    sandbox = lesson_sandbox("selftest")
    assert sandbox.run("echo", {"calls": 2})["statuses"] == [200, 200]
    with pytest.raises(RunFailed, match="fails on purpose"):
        sandbox.run("fail")


def test_control_changes_a_service_and_refusals_carry_the_reason(lesson_sandbox):
    sandbox = lesson_sandbox("selftest")
    try:
        states = sandbox.control("scale", "echo", replicas=2)
        assert states["echo"]["replicas"] == 2
        assert len(sandbox.addresses("echo")) == 2
    finally:
        sandbox.control("scale", "echo", replicas=1)
    with pytest.raises(SandboxError, match="replicas"):
        sandbox.control("scale", "echo", replicas=99)


def test_workdir_holds_the_services_logs(lesson_sandbox):
    sandbox = lesson_sandbox("selftest")
    assert (sandbox.workdir / "logs" / "echo-0.log").exists()


def test_dump_stacks_prints_every_service_s_threads(lesson_sandbox, capsys):
    sandbox = lesson_sandbox("selftest")
    sandbox.dump_stacks()
    printed = capsys.readouterr().out
    for name in ("echo-0.log", "greeter-0.log", "listener-0.log"):
        assert f"--- {name}" in printed
    assert printed.count("most recent call first") >= 3  # faulthandler's header, per thread


def test_settings_override_the_lesson_s_for_one_sandbox_only(sandbox_host):
    from tests.sandboxes import start_sandbox

    # The runtime's own setting: no service is ready within a microsecond.
    with pytest.raises(SandboxError, match=r"not ready after 1e-06 s"):
        start_sandbox(sandbox_host, "selftest", {"start_timeout_s": 1e-6})


_OWN_SANDBOXES: list[str] = []


def test_new_sandbox_gives_a_test_a_sandbox_of_its_own(new_sandbox, lesson_sandbox):
    sandbox = new_sandbox("selftest")
    assert client.is_alive(sandbox.id) and sandbox.id != lesson_sandbox("selftest").id
    _OWN_SANDBOXES.append(sandbox.id)


def test_the_previous_test_s_own_sandbox_was_stopped_after_it():
    if not _OWN_SANDBOXES:
        pytest.skip("runs after test_new_sandbox_gives_a_test_a_sandbox_of_its_own")
    assert client.status(_OWN_SANDBOXES[-1])["state"] == "stopped"
