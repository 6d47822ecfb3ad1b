"""The Saga lesson: invariants under chaos, crashes of real processes, and the run results.

Two layers, both on the real code paths. The property tests run the real
backends, outbox, reactions, coordinator and saga log on real SQLite files in
one process, with a scripted wire (duplicates, reordering, lost replies,
crashes), so hundreds of sagas take seconds. The live tests run the five
services as real processes over real gRPC and RabbitMQ and SIGKILL them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sandbox_services.saga import LAB, experiments, hooks, invariants, scenario
from sandbox_services.saga.knobs import TIMEOUTS, SagaConfig
from sandbox_services.saga.local import LocalSandbox
from sandbox_services.saga.timeline import saga_view
from sandbox_services.runtime.params import ParameterError
from sandbox_services.saga.services.coordinator import backend as coordinator_module
from sandbox_services.saga.services.coordinator.client import CoordinatorClient
from sandbox_services.saga.inprocess import Chaos, ChoreographyWorld, OrchestrationWorld
from sandbox_services.saga.interface import FAIL_KINDS, STATES, FaultPlan, Order
from sandbox_services.saga.services.payments.backend import PaymentsBackend
from sandbox_services.saga.topology import all_queue_names, exchange_name
from tests.broker import broker_has

pytestmark = pytest.mark.timeout(300)

# No simulated latency in-process: the property tests are about correctness.
FAST = SagaConfig(step_work_s=0.0, participant_budget_s=0.0, retry_backoff_s=0.0, crash_pause_s=0.0)
SAGAS_PER_EXAMPLE = 10
EXAMPLES = 22  # x 10 sagas = 220 sagas per mode

plans = st.builds(
    FaultPlan,
    fail_at=st.sampled_from([None, "payments", "inventory", "shipping"]),
    fail_kind=st.sampled_from(FAIL_KINDS),
    duplicate=st.booleans(),
)
orders_strategy = st.lists(
    st.tuples(plans, st.integers(1, 5), st.integers(1, 100_000)),
    min_size=SAGAS_PER_EXAMPLE,
    max_size=SAGAS_PER_EXAMPLE,
)


def make_orders(specs: list[tuple[FaultPlan, int, int]]) -> list[Order]:
    return [
        Order(
            uuid.uuid4().hex, f"o{i}", "ada", FAST.skus[i % len(FAST.skus)], quantity, amount, plan
        )
        for i, (plan, quantity, amount) in enumerate(specs)
    ]


def assert_invariants(workdir: Path, orders: list[Order], mode: str) -> None:
    results = invariants.check(workdir, [o.saga_id for o in orders], mode=mode)
    assert [r for r in results if not r["ok"]] == [], results


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    specs=orders_strategy,
    duplicate=st.floats(0.0, 0.5),
    reorder=st.booleans(),
    crash=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
def test_choreography_invariants_hold_under_duplicates_reordering_and_crashes(
    specs, duplicate, reorder, crash, seed
):
    orders = make_orders(specs)
    with tempfile.TemporaryDirectory() as directory:
        world = ChoreographyWorld(
            Path(directory), FAST, Chaos(duplicate=duplicate, reorder=reorder, crash=crash), seed
        )
        try:
            for order in orders:
                world.place(order)
            world.run()
        finally:
            world.close()
        assert_invariants(Path(directory), orders, "choreography")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    specs=orders_strategy,
    duplicate=st.floats(0.0, 0.5),
    crash=st.floats(0.0, 0.1),
    lost_reply=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_orchestration_invariants_hold_under_lost_replies_duplicates_and_coordinator_crashes(
    specs, duplicate, crash, lost_reply, seed
):
    orders = make_orders(specs)
    with tempfile.TemporaryDirectory() as directory:
        world = OrchestrationWorld(
            Path(directory),
            FAST,
            Chaos(duplicate=duplicate, crash=crash, lost_reply=lost_reply),
            seed,
        )
        try:
            asyncio.run(world.run(orders))
        finally:
            world.close()
        assert_invariants(Path(directory), orders, "orchestration")


def test_compensation_before_its_step_leaves_a_tombstone_that_refuses_the_late_step(tmp_path):
    payments = PaymentsBackend.open(tmp_path, FAST)
    order = make_orders([(FaultPlan(), 1, 500)])[0]
    try:
        assert payments.execute("refund", order).status == "noop"
        assert payments.execute("charge", order).status == "refused"
        assert payments.execute("charge", order).status == "refused"
        ledger = payments.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    finally:
        payments.close()
    assert ledger == 0


def test_a_redelivered_message_is_applied_once(tmp_path):
    payments = PaymentsBackend.open(tmp_path, FAST)
    order = make_orders([(FaultPlan(), 1, 500)])[0]
    try:
        first = payments.execute("charge", order, message_id="m1", emit=True)
        again = payments.execute("charge", order, message_id="m1", emit=True)
        rows = payments.conn.execute("SELECT kind FROM ledger").fetchall()
        events = payments.conn.execute("SELECT event FROM outbox").fetchall()
    finally:
        payments.close()
    assert (first.status, again.status) == ("done", "duplicate")
    assert [r[0] for r in rows] == ["charge"]
    assert [e[0] for e in events] == ["PaymentCharged"]


def test_each_coordinator_timeline_entry_opens_the_span_of_its_own_command(tmp_path, monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # A tracer of our own, not the global provider: the services this module starts set theirs.
    monkeypatch.setattr(coordinator_module, "tracer", provider.get_tracer("test"))
    order = make_orders([(FaultPlan(fail_at="shipping"), 1, 500)])[0]
    world = OrchestrationWorld(tmp_path, FAST, Chaos(), seed=1)
    try:
        asyncio.run(world.run([order]))
    finally:
        world.close()
    spans = {format(s.context.span_id, "016x"): s for s in exporter.get_finished_spans()}
    entries = [
        i
        for i in saga_view(tmp_path, order.saga_id, mode="orchestration")["timeline"]
        if i["service"] == "coordinator"
    ]
    assert len(entries) == 7  # create, charge, reserve, failed schedule, release, refund, reject
    assert len({i["span_id"] for i in entries}) == len(entries)
    for entry in entries:
        span = spans[entry["span_id"]]
        assert span.attributes["saga.action"] == entry["step"], (entry, span.name)


# -- the live sandbox: real processes, real gRPC, real RabbitMQ -------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """Start the five services as processes; stop them and delete broker objects, always."""
    box = LocalSandbox(tmp_path_factory.mktemp("saga"))
    try:
        asyncio.run(box.start_all())
        yield box
    finally:
        box.close()
    assert not any(broker_has(name) for name in all_queue_names(box.prefix))
    assert not broker_has(exchange_name(box.prefix), "exchange")


@pytest.fixture
def ctx(sandbox):
    return sandbox.experiment_context()


async def test_sigkill_of_the_coordinator_mid_saga_then_start_completes_or_compensates(sandbox):
    outcomes = {}
    for then_fail in (None, "shipping"):
        order = scenario.new_order(
            SagaConfig(), FaultPlan(fail_at=then_fail, pause_after="payments")
        )
        async with grpc.aio.insecure_channel(sandbox.address("coordinator")) as channel:
            await CoordinatorClient(channel).start_saga(order)
            deadline = time.monotonic() + 20
            while not (await CoordinatorClient(channel).states([order.saga_id]))[
                order.saga_id
            ].paused:
                assert time.monotonic() < deadline, "the saga never paused between two steps"
                await asyncio.sleep(0.05)
        pid = sandbox.processes["coordinator"].pid
        os.kill(pid, signal.SIGKILL)
        assert sandbox.processes["coordinator"].wait(10) == -signal.SIGKILL
        await sandbox.start("coordinator")
        async with grpc.aio.insecure_channel(sandbox.address("coordinator")) as channel:
            deadline = time.monotonic() + 20
            while True:
                state = (await CoordinatorClient(channel).states([order.saga_id]))[order.saga_id]
                if state.finished:
                    break
                assert time.monotonic() < deadline, f"saga stuck in {state.state}"
                await asyncio.sleep(0.05)
        outcomes[then_fail] = state.state
        assert_invariants(sandbox.workdir, [order], "orchestration")
    assert outcomes == {None: "APPROVED", "shipping": "REJECTED"}


async def test_participant_crash_between_commit_and_publish_loses_nothing(ctx, sandbox):
    result = await experiments.crash(ctx, {"target": "payments"})
    assert result["ok"], (result.get("headline"), result.get("table"))
    timeline = result["saga"]["timeline"]
    assert ("payments", "process", "killed") in {
        (i["service"], i["step"], i["status"]) for i in timeline
    }
    # The broker redelivered the unacked event; the inbox recognised it.
    assert any(
        i["service"] == "payments" and i["step"] == "charge" and i["status"] == "duplicate"
        for i in timeline
    )
    assert sandbox.running("payments")


async def test_live_random_sagas_with_duplicate_deliveries_keep_every_invariant(ctx):
    rng = random.Random(7)
    driver = scenario.SagaDriver(ctx, "batch")
    try:
        for mode in ("choreography", "orchestration"):
            orders = [
                scenario.new_order(
                    SagaConfig(),
                    FaultPlan(
                        fail_at=rng.choice((None, "payments", "inventory", "shipping")),
                        fail_kind=rng.choice(("refusal", "error")),
                        duplicate=rng.random() < 0.5,
                    ),
                    rng=rng,
                )
                for _ in range(30)
            ]
            assert await driver.run(mode, orders) == []
            assert_invariants(ctx.workdir, orders, mode)
    finally:
        await driver.close()


async def test_failure_run_result_carries_the_timeline_with_compensations_in_reverse(ctx):
    result = await experiments.failure(ctx, {"fail_at": "shipping", "fail_kind": "refusal"})
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert [view["mode"] for view in result["sagas"]] == ["choreography", "orchestration"]
    for view in result["sagas"]:
        assert set(view) >= {
            "mode",
            "saga_id",
            "timeline",
            "lanes",
            "state_machine",
            "states",
            "current_state",
            "invariants",
        }
        for item in view["timeline"]:
            assert set(item) >= {
                "service",
                "step",
                "kind",
                "status",
                "start_ns",
                "end_ns",
                "trace_id",
                "span_id",
                "saga_id",
            }
            assert item["kind"] in ("forward", "compensation", "failure")
        undone = [
            i["step"]
            for i in view["timeline"]
            if i["kind"] == "compensation" and i["service"] != "coordinator"
        ]
        assert undone == ["release", "refund", "reject"]
        failure = [i for i in view["timeline"] if i["kind"] == "failure"]
        assert failure and failure[0]["service"] in ("shipping", "coordinator")
        assert all(i["trace_id"] for i in view["timeline"])
        # Each of the coordinator's entries opens its own command's span, not the saga's.
        commands = [i["span_id"] for i in view["timeline"] if i["service"] == "coordinator"]
        assert len(set(commands)) == len(commands)
    orchestration = result["sagas"][1]
    assert orchestration["current_state"] == "REJECTED"
    assert orchestration["states"] == [
        "STARTED",
        "CREATING_ORDER",
        "CHARGING_PAYMENT",
        "RESERVING_STOCK",
        "SCHEDULING_SHIPPING",
        "RELEASING_STOCK",
        "REFUNDING_PAYMENT",
        "REJECTING_ORDER",
        "REJECTED",
    ]
    assert set(orchestration["states"]) <= set(STATES)
    visited = list(zip(orchestration["states"], orchestration["states"][1:], strict=False))
    assert all(list(edge) in orchestration["state_edges"] for edge in visited)


async def test_duplicates_experiment_ignores_every_repeat_and_the_early_compensation(ctx):
    result = await experiments.duplicates(ctx, {"sagas": 6})
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["summary"][0]["value"] > 0
    for view in result["sagas"]:
        assert view["current_state"] in (None, "REJECTED")
        assert any(i["status"] == "noop" for i in view["timeline"])


async def test_a_saga_still_running_at_the_deadline_is_reported_as_running(
    ctx, sandbox, monkeypatch
):
    monkeypatch.setitem(TIMEOUTS, "happy-path", 3.0)
    await ctx.control("stop", "shipping")
    try:
        result = await experiments.happy_path(ctx, {})
        # The stuck choreography saga does not eat the orchestration saga's time:
        # the run's own view already shows the coordinator waiting on the cancel.
        orchestration_view = result["sagas"][1]
        assert orchestration_view["current_state"] == "CANCELLING_SHIPPING", orchestration_view
        # Neither saga finished, and the headline says so instead of quoting durations.
        assert "choreography still running" in result["headline"], result["headline"]
        assert "orchestration still running" in result["headline"], result["headline"]
        assert "Both sagas ran" not in result["headline"]
        # The metrics hook, what the browser sees every second, shows it running too.
        assert (await hooks.metrics(ctx))["sagas_running"] >= 1
        # The coordinator cannot confirm the cancel of a shipment that may exist: it waits.
        orchestrated = result["running"]["orchestration"][0]
        async with grpc.aio.insecure_channel(sandbox.address("coordinator")) as channel:
            deadline = time.monotonic() + 20
            while (await CoordinatorClient(channel).states([orchestrated]))[
                orchestrated
            ].state != "CANCELLING_SHIPPING":
                assert time.monotonic() < deadline, "never reached CANCELLING_SHIPPING"
                await asyncio.sleep(0.05)
    finally:
        await ctx.control("start", "shipping")
    assert result["ok"] is False
    assert len(result["running"]["choreography"]) == 1
    assert any("still running" in note for note in result["notes"])
    ended = next(i for i in result["invariants"]["choreography"] if "stuck" in i["name"])
    assert not ended["ok"] and "1 still running" in ended["detail"]
    # Once shipping is back, both stalled sagas finish on their own.
    driver = scenario.SagaDriver(ctx, "batch")
    try:
        for mode in ("choreography", "orchestration"):
            assert await driver.wait(mode, result["running"][mode]) == []
    finally:
        await driver.close()
    assert saga_view(ctx.workdir, orchestrated, mode="orchestration")["current_state"] == (
        "REJECTED"
    )


@pytest.mark.parametrize(
    ("experiment", "params", "name"),
    [
        ("batch", {"sagas": 0}, "sagas"),
        ("batch", {"sagas": 10**6}, "sagas"),
        ("batch", {"failure_probability": 1.5}, "failure_probability"),
        ("failure", {"fail_at": "orders"}, "fail_at"),
        ("failure", {"fail_kind": "explode"}, "fail_kind"),
        (
            "crash",
            {"target": "coordinator", "after_step": "inventory", "then_fail_at": "payments"},
            "then_fail_at",
        ),
        ("happy-path", {"quantity": -1}, "quantity"),
        ("duplicates", {"bogus": 1}, "bogus"),
    ],
)
async def test_bad_parameters_are_refused_with_a_message_naming_them(ctx, experiment, params, name):
    function = getattr(experiments, experiment.replace("-", "_"))
    with pytest.raises(ParameterError) as error:
        await function(ctx, params)
    assert str(error.value).startswith(f"{name}:")


def test_lab_spec_names_every_experiment_and_exposes_grpc_services():
    assert LAB.slug == "saga"
    assert {e.name for e in LAB.experiments} == set(TIMEOUTS)
    assert {s.name for s in LAB.services} == {
        "orders",
        "payments",
        "inventory",
        "shipping",
        "coordinator",
    }
    assert all(s.protocol == "grpc" for s in LAB.services)


def test_saga_view_of_an_unknown_saga_is_empty_and_says_it_is_stuck(tmp_path):
    view = saga_view(tmp_path, "nope", mode="orchestration")
    assert view["timeline"] == [] and view["current_state"] is None
    assert view["invariants"][0]["ok"] is False


def test_lesson_front_matter_declares_the_parameters_the_experiments_enforce():
    import yaml

    from sandbox_services.saga.knobs import PARAMETERS

    text = (Path(__file__).resolve().parents[3] / "lessons" / "saga" / "lesson.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    declared = {e["name"]: e["parameters"] for e in meta["experiments"]}
    assert declared == {name: [p.as_dict() for p in params] for name, params in PARAMETERS.items()}


# -- through the lab's own runtime: host, supervisor, forked services and runners -----------
@pytest.fixture(scope="module")
def runtime_sandbox():
    """Start a sandbox host with a worker heartbeat, spawn a saga sandbox; end both, always."""
    import subprocess
    import sys
    import threading

    import redis

    from sandbox_services.runtime import client, keys

    connection = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1"))
    name = f"saga-test-{uuid.uuid4().hex[:8]}"
    alive = keys.worker_alive(name)
    connection.set(alive, 1, px=3000)
    root = Path(__file__).resolve().parents[3]
    host = subprocess.Popen(
        [sys.executable, "-m", "sandbox_services.runtime.host", "--name", name],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "LAB_KEEPALIVE_SECONDS": "3"},
        start_new_session=True,
    )
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(1.0):
            connection.set(alive, 1, px=3000)

    threading.Thread(target=beat, daemon=True).start()
    sandbox_id = uuid.uuid4().hex
    try:
        client.spawn(
            host=name,
            sandbox_id=sandbox_id,
            lesson="saga",
            hard_deadline=time.time() + 240,
            idle_timeout_s=120,
            timeout_s=60,
        )
        yield sandbox_id
    finally:
        if client.is_alive(sandbox_id):
            client.command(sandbox_id, "stop", timeout_s=20)
        stop.set()
        host.send_signal(signal.SIGTERM)
        try:
            host.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(host.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        host.wait()
        connection.delete(alive)
    prefix = f"lab.{sandbox_id}."
    # The lesson's teardown hook ran when the sandbox stopped.
    assert not any(broker_has(queue) for queue in all_queue_names(prefix))


def run_in_runtime(sandbox_id: str, experiment: str, params: dict) -> dict:
    from sandbox_services.runtime import client

    reply = client.command(
        sandbox_id,
        "run",
        run_id=uuid.uuid4().hex[:8],
        experiment=experiment,
        params=params,
        timeout_s=120,
    )
    assert reply["state"] == "done", reply
    return reply["result"]


def test_the_runtime_runs_the_failure_experiment_and_returns_the_timeline(runtime_sandbox):
    result = run_in_runtime(
        runtime_sandbox, "failure", {"fail_at": "inventory", "fail_kind": "timeout"}
    )
    assert result["ok"], result["invariants"]
    for view in result["sagas"]:
        undone = [
            i["step"]
            for i in view["timeline"]
            if i["kind"] == "compensation" and i["service"] != "coordinator"
        ]
        # A timeout is no answer: orchestration also undoes the timed-out step itself.
        expected = (
            ["refund", "reject"]
            if view["mode"] == "choreography"
            else ["release", "refund", "reject"]
        )
        assert undone == expected, view["timeline"]


def test_the_runtime_kills_and_restarts_the_coordinator_and_the_saga_compensates(
    runtime_sandbox,
):
    result = run_in_runtime(
        runtime_sandbox,
        "crash",
        {"target": "coordinator", "after_step": "inventory", "then_fail_at": "shipping"},
    )
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["saga"]["current_state"] == "REJECTED"
