"""Every span says which experiment run it belongs to, or that it is background work."""

from __future__ import annotations

import os
import urllib.request

import pytest

from sandbox_services.runtime import client

from .conftest import wait_until


@pytest.fixture(scope="module")
def sandbox(shared_host) -> str:
    sandbox_id, _ = shared_host.spawn()
    return sandbox_id


def run(sandbox_id: str, experiment: str, **params) -> str:
    run_id = os.urandom(4).hex()
    reply = client.command(
        sandbox_id, "run", run_id=run_id, experiment=experiment, params=params, timeout_s=30
    )
    assert reply["state"] == "done", reply
    return run_id


def spans_of(sandbox_id: str, *, services: set[str], since: int = 0) -> list[dict]:
    """Wait until every named service has at least one kept span after ``since``."""
    return wait_until(
        lambda: (
            (found := [s for s in client.replay(sandbox_id, since) if s["service"] in services])
            and {s["service"] for s in found} >= services
            and found
        ),
        10,
    )


def test_a_runs_spans_in_every_process_carry_its_id_over_grpc(sandbox):
    since = (client.replay(sandbox) or [{"seq": 0}])[-1]["seq"]
    run_id = run(sandbox, "greet")
    spans = spans_of(sandbox, services={"learner", "greeter"}, since=since)
    assert {span["run"] for span in spans} == {run_id}


def test_the_run_id_crosses_rabbitmq_to_the_consumer(sandbox):
    since = (client.replay(sandbox) or [{"seq": 0}])[-1]["seq"]
    run_id = run(sandbox, "publish", count=2)
    spans = spans_of(sandbox, services={"learner", "listener"}, since=since)
    consumer = [span for span in spans if span["service"] == "listener"]
    assert consumer and {span["run"] for span in consumer} == {run_id}


def test_a_call_from_outside_any_run_is_background(sandbox):
    since = (client.replay(sandbox) or [{"seq": 0}])[-1]["seq"]
    port = client.status(sandbox)["services"]["echo"]["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/echo?message=x", timeout=5) as reply:
        assert reply.status == 200
    [span] = [s for s in spans_of(sandbox, services={"echo"}, since=since) if s["kind"] == "server"]
    assert span["run"] == "background"
