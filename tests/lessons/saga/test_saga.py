"""The Saga lesson on the real runtime: invariants under faults, crashes of real processes, results.

Every test runs against a sandbox started by the lab's own host and supervisor
(tests/sandboxes.py): five forked services speaking real gRPC to each other and
real AMQP through RabbitMQ, each on its own SQLite file. Experiments run as the
platform runs them, in the supervisor's forked runner. The evidence is the
services' own stores (read-only, through the invariant checks), the broker, and
the spans the supervisor kept; never what an experiment says about itself.

The property tests drive random sagas from this process and break a service
while they run, the way a learner can: SIGKILL it and start it again, delay its
calls past the coordinator's deadline (the step applies, its reply comes too
late), or fail a share of them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from types import SimpleNamespace

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_services.saga import LAB, hooks, invariants, scenario
from sandbox_services.saga.interface import FAIL_KINDS, STATES, FaultPlan, Order
from sandbox_services.saga.knobs import PARAMETERS, TIMEOUTS, SagaConfig
from sandbox_services.saga.services.coordinator.client import CoordinatorClient
from sandbox_services.saga.services.orders.client import OrdersClient
from sandbox_services.saga.services.participant.client import ParticipantClient
from sandbox_services.saga.stores import read_only, rows_for
from sandbox_services.saga.timeline import saga_view
from sandbox_services.saga.topology import all_queue_names, exchange_name
from tests.broker import broker_has
from tests.sandboxes import LaunchedHost, RunFailed, Sandbox, start_sandbox, wait_until

pytestmark = pytest.mark.timeout(300)

CONFIG = SagaConfig()
SAGAS_PER_EXAMPLE = 8
EXAMPLES = 6  # per mode: each example is a few seconds of live sagas and a broken service
# How long a fault stays on; the sagas start one every SPACING_S, so some start
# before it, some while it is on and some after, and each meets it mid-flight.
FAULT_WINDOW_S = 0.8
SPACING_S = 0.15
START_PATIENCE_S = 15.0
# A delay past the coordinator's step deadline: the step applies, its reply is lost.
LATE_REPLY_DELAY_MS = 600


def params_of(experiment: str, **values) -> dict:
    """Return every parameter of an experiment: its declared defaults, then ``values``."""
    return {**{p.name: p.default for p in PARAMETERS[experiment]}, **values}


def driver_context(box: Sandbox) -> SimpleNamespace:
    """Return what ``scenario.SagaDriver`` reads of an experiment's ctx, for this sandbox.

    The test's driver waits 10% of a batch run's time (30 s) for its sagas to end:
    a regression that leaves sagas stuck fails in seconds, not at the test timeout.
    """
    return SimpleNamespace(
        sandbox_id=box.id,
        prefix=box.prefix,
        workdir=box.workdir,
        amqp_url=box.host.config.amqp_url,
        settings={**LAB.settings, "wait_fraction": 0.1},
        address=box.address,
        addresses=box.addresses,
    )


def assert_invariants(box: Sandbox, orders: list[Order], mode: str) -> None:
    results = invariants.check(box.workdir, [o.saga_id for o in orders], mode=mode)
    assert [r for r in results if not r["ok"]] == [], results


async def wait_ended(box: Sandbox, driver: scenario.SagaDriver, mode: str, ids: list[str]) -> None:
    """Wait for these sagas to end; on a timeout, dump every process's stacks, then fail."""
    running = await driver.wait(mode, ids)
    if running:
        box.dump_stacks()
    assert running == [], f"{len(running)} {mode} saga(s) never ended"


@pytest.fixture(scope="module")
def saga(sandbox_host: LaunchedHost) -> Iterator[Sandbox]:
    """One saga sandbox for the module; after it stops, its broker objects are gone."""
    box = start_sandbox(sandbox_host, "saga")
    try:
        yield box
    finally:
        box.stop()
    # The lesson's teardown hook ran when the supervisor stopped the sandbox.
    assert not any(broker_has(name) for name in all_queue_names(box.prefix))
    assert not broker_has(exchange_name(box.prefix), "exchange")


# -- invariants under random sagas and a broken service --------------------------------------

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
faults = st.sampled_from(["kill", "delay", "error"])


def make_orders(specs: list[tuple[FaultPlan, int, int]]) -> list[Order]:
    rng = random.Random(len(specs))
    return [
        scenario.new_order(CONFIG, plan, quantity=quantity, amount_cents=amount, rng=rng)
        for plan, quantity, amount in specs
    ]


async def break_for_a_while(box: Sandbox, service: str, fault: str, after_s: float) -> None:
    """Break ``service`` ``after_s`` into the run, for FAULT_WINDOW_S, as a learner would."""
    await asyncio.sleep(after_s)
    if fault == "kill":
        states = await asyncio.to_thread(box.control, "kill", service)
        assert states[service]["state"] == "crashed", states[service]
    elif fault == "delay":
        await asyncio.to_thread(box.control, "delay", service, delay_ms=LATE_REPLY_DELAY_MS)
    else:
        await asyncio.to_thread(box.control, "error", service, error_rate=0.5)
    await asyncio.sleep(FAULT_WINDOW_S)
    if fault == "kill":
        states = await asyncio.to_thread(box.control, "start", service)
        assert states[service]["state"] == "running", states[service]
    else:
        await asyncio.to_thread(box.control, "clear", service)


async def start_through_faults(driver: scenario.SagaDriver, mode: str, order: Order) -> None:
    """Start a saga, trying again while the entry point is down (killed, or still starting).

    The driver's own retries cover a blip; a killed entry point is back only after its
    restart, and a gRPC channel waits a second or more before it dials again.
    """
    deadline = time.monotonic() + START_PATIENCE_S
    while True:
        try:
            await driver.start(mode, order)
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def run_broken(box: Sandbox, mode: str, orders: list[Order], service: str, fault: str, at: float):
    """Run the sagas while ``service`` is broken for a while; wait until every one ended."""

    async def scenario_run() -> None:
        driver = scenario.SagaDriver(driver_context(box), "batch")
        try:
            breaking = asyncio.ensure_future(break_for_a_while(box, service, fault, at))
            try:
                for order in orders:
                    await start_through_faults(driver, mode, order)
                    await asyncio.sleep(SPACING_S)
            finally:
                await breaking
            await wait_ended(box, driver, mode, [o.saga_id for o in orders])
        finally:
            await driver.close()

    asyncio.run(scenario_run())


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(
    specs=orders_strategy,
    service=st.sampled_from(["orders", "payments", "inventory", "shipping"]),
    fault=faults,
    at=st.floats(0.0, 0.4),
)
def test_choreography_invariants_hold_when_a_participant_is_killed_slowed_or_failing(
    saga, specs, service, fault, at
):
    orders = make_orders(specs)
    run_broken(saga, "choreography", orders, service, fault, at)
    assert_invariants(saga, orders, "choreography")


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(
    specs=orders_strategy,
    service=st.sampled_from(["coordinator", "payments", "inventory", "shipping"]),
    fault=faults,
    at=st.floats(0.0, 0.4),
)
def test_orchestration_invariants_hold_through_lost_replies_duplicates_and_killed_processes(
    saga, specs, service, fault, at
):
    orders = make_orders(specs)
    run_broken(saga, "orchestration", orders, service, fault, at)
    assert_invariants(saga, orders, "orchestration")


# -- idempotency, read from the participants' own stores -------------------------------------


def ledger(box: Sandbox, saga_id: str) -> list[str]:
    with read_only(box.workdir, "payments") as conn:
        rows = rows_for(conn, "SELECT kind FROM ledger", [saga_id])
    return [row["kind"] for row in rows]


async def test_compensation_before_its_step_leaves_a_tombstone_that_refuses_the_late_step(saga):
    order = scenario.new_order(CONFIG, amount_cents=500)
    async with grpc.aio.insecure_channel(saga.address("payments")) as channel:
        payments = ParticipantClient("payments", channel, 5.0)
        assert (await payments.execute("refund", order)).status == "noop"
        assert (await payments.execute("charge", order)).status == "refused"
        assert (await payments.execute("charge", order)).status == "refused"
    assert ledger(saga, order.saga_id) == []


async def test_an_event_delivered_twice_is_applied_once(saga):
    # The plan makes every relay publish each outbox row twice, same message id.
    order = scenario.new_order(CONFIG, FaultPlan(duplicate=True))
    driver = scenario.SagaDriver(driver_context(saga), "batch")
    try:
        async with grpc.aio.insecure_channel(saga.address("orders")) as channel:
            assert (await OrdersClient(channel).place_order(order)).status == "done"
        await wait_ended(saga, driver, "choreography", [order.saga_id])
    finally:
        await driver.close()
    assert ledger(saga, order.saga_id) == ["charge"]
    with read_only(saga.workdir, "payments") as conn:
        handled = [
            (row["step"], row["status"])
            for row in rows_for(conn, "SELECT step, status FROM step_log", [order.saga_id])
        ]
        events = rows_for(conn, "SELECT event FROM outbox", [order.saga_id])
    assert sorted(handled) == [("charge", "done"), ("charge", "duplicate")]
    assert [row["event"] for row in events] == ["PaymentCharged"]
    assert_invariants(saga, [order], "choreography")


async def test_a_command_sent_twice_is_applied_once(saga):
    # The plan makes the coordinator send every command twice, as after a lost reply.
    order = scenario.new_order(CONFIG, FaultPlan(duplicate=True))
    driver = scenario.SagaDriver(driver_context(saga), "batch")
    try:
        await driver.start("orchestration", order)
        await wait_ended(saga, driver, "orchestration", [order.saga_id])
    finally:
        await driver.close()
    assert saga_view(saga.workdir, order.saga_id, mode="orchestration")["current_state"] == (
        "APPROVED"
    )
    assert ledger(saga, order.saga_id) == ["charge"]
    for service, step in (("orders", "create"), ("payments", "charge"), ("shipping", "schedule")):
        with read_only(saga.workdir, service) as conn:
            handled = rows_for(conn, "SELECT step, status FROM step_log", [order.saga_id])
        statuses = sorted(row["status"] for row in handled if row["step"] == step)
        assert statuses == ["done", "duplicate"], (service, statuses)
    assert_invariants(saga, [order], "orchestration")


# -- crashes of real processes ---------------------------------------------------------------


async def test_sigkill_of_the_coordinator_mid_saga_then_start_completes_or_compensates(saga):
    outcomes = {}
    for then_fail in (None, "shipping"):
        order = scenario.new_order(CONFIG, FaultPlan(fail_at=then_fail, pause_after="payments"))
        async with grpc.aio.insecure_channel(saga.address("coordinator")) as channel:
            coordinator = CoordinatorClient(channel)
            await coordinator.start_saga(order)
            deadline = time.monotonic() + 20
            while not (await coordinator.states([order.saga_id]))[order.saga_id].paused:
                assert time.monotonic() < deadline, "the saga never paused between two steps"
                await asyncio.sleep(0.05)
        before = saga.states()["coordinator"]["pid"]
        killed = await asyncio.to_thread(saga.control, "kill", "coordinator")
        assert killed["coordinator"]["state"] == "crashed"
        assert killed["coordinator"]["exit_code"] == -9  # SIGKILL: no goodbye
        started = await asyncio.to_thread(saga.control, "start", "coordinator")
        assert started["coordinator"]["pid"] not in (None, before)
        async with grpc.aio.insecure_channel(saga.address("coordinator")) as channel:
            coordinator = CoordinatorClient(channel)
            deadline = time.monotonic() + 20
            while not (
                state := (await coordinator.states([order.saga_id]))[order.saga_id]
            ).finished:
                assert time.monotonic() < deadline, f"saga stuck in {state.state}"
                await asyncio.sleep(0.05)
        outcomes[then_fail] = state.state
        assert_invariants(saga, [order], "orchestration")
    assert outcomes == {None: "APPROVED", "shipping": "REJECTED"}


def test_participant_crash_between_commit_and_publish_loses_nothing(saga):
    result = saga.run("crash", params_of("crash", target="payments"))
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
    assert saga.states()["payments"]["state"] == "running"
    assert_invariants(saga, [_order(result["saga"]["saga_id"])], "choreography")


def test_the_runtime_kills_and_restarts_the_coordinator_and_the_saga_compensates(saga):
    result = saga.run(
        "crash",
        params_of("crash", target="coordinator", after_step="inventory", then_fail_at="shipping"),
    )
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["saga"]["current_state"] == "REJECTED"
    assert saga.states()["coordinator"]["state"] == "running"
    assert_invariants(saga, [_order(result["saga"]["saga_id"])], "orchestration")


def _order(saga_id: str) -> Order:
    """Return an order that names only its saga id (what the invariant check reads)."""
    return Order(saga_id, "", "", "", 0, 0, FaultPlan())


# -- run results -----------------------------------------------------------------------------


def test_failure_run_result_carries_the_timeline_with_compensations_in_reverse(saga):
    result = saga.run("failure", params_of("failure", fail_at="shipping", fail_kind="refusal"))
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
        assert_invariants(saga, [_order(view["saga_id"])], view["mode"])
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


def test_each_coordinator_timeline_entry_opens_the_span_of_its_own_command(saga):
    since = saga.last_seq()
    result = saga.run("failure", params_of("failure", mode="orchestration", fail_at="shipping"))
    (view,) = result["sagas"]
    entries = [i for i in view["timeline"] if i["service"] == "coordinator"]
    assert len(entries) == 7  # create, charge, reserve, failed schedule, release, refund, reject
    assert len({i["span_id"] for i in entries}) == len(entries)
    wanted = {i["span_id"] for i in entries}

    def coordinator_spans() -> dict[str, dict] | None:
        # Spans reach the supervisor in batches, after the run's reply: wait for all of them.
        spans = {s["span_id"]: s for s in saga.spans(since) if s["span_id"] in wanted}
        return spans if len(spans) == len(wanted) else None

    spans = wait_until(coordinator_spans, timeout_s=20)
    for entry in entries:
        span = spans[entry["span_id"]]
        assert span["service"] == "coordinator", span
        assert span["attributes"]["saga.action"] == entry["step"], (entry, span["name"])
        assert span["trace_id"] == entry["trace_id"]


def test_the_runtime_runs_a_timeout_and_orchestration_also_undoes_the_timed_out_step(saga):
    result = saga.run("failure", params_of("failure", fail_at="inventory", fail_kind="timeout"))
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
        assert_invariants(saga, [_order(view["saga_id"])], view["mode"])


def figure(result: dict, label: str) -> float:
    """Return a summary figure of a run's result by its label."""
    return next(item["value"] for item in result["summary"] if item["label"] == label)


def test_happy_path_counts_the_services_to_read_as_the_spans_show_them(saga):
    since = saga.last_seq()
    result = saga.run("happy-path", params_of("happy-path"))
    assert result["ok"], result["headline"]
    choreographed, orchestrated = (view["saga_id"] for view in result["sagas"])

    def step_spans() -> tuple[dict, set[str]] | None:
        # Participants' step spans carry the saga id; the coordinator's command spans
        # sit in the trace of its "saga" span, which carries it.
        spans = saga.spans(since)
        by_saga: dict[str, set[str]] = {choreographed: set(), orchestrated: set()}
        services: dict[str, set[str]] = {choreographed: set(), orchestrated: set()}
        for span in spans:
            saga_id = span["attributes"].get("saga.id")
            if saga_id in by_saga and "." in span["name"] and " " not in span["name"]:
                by_saga[saga_id].add(f"{span['service']} {span['name'].split('.', 1)[1]}")
                services[saga_id].add(span["service"])
        traces = {
            span["trace_id"]
            for span in spans
            if span["service"] == "coordinator"
            and span["attributes"].get("saga.id") == orchestrated
        }
        commands = {
            f"{span['attributes']['saga.service']} {span['attributes']['saga.action']}"
            for span in spans
            if span["trace_id"] in traces and "saga.action" in span["attributes"]
        }
        complete = len(by_saga[choreographed]) == 5 and len(by_saga[orchestrated]) == 5
        return ({"steps": by_saga, "services": services}, commands) if complete else None

    found, commands = wait_until(step_spans, timeout_s=20)
    # Choreography: each participant's spans name only its own steps, so you read them all.
    assert figure(result, "services to read to rebuild the saga (choreography)") == len(
        found["services"][choreographed]
    )
    # Orchestration: the coordinator's own command spans name every step a participant did.
    assert found["steps"][orchestrated] <= commands, (found["steps"][orchestrated], commands)
    assert figure(result, "services to read to rebuild the saga (orchestration)") == 1
    # The table's triggers come from the stores too: an event's publisher, or the coordinator.
    rows = {row[0]: row for row in result["table"]["rows"]}
    assert rows["charge"][4] == "OrderCreated from orders", rows["charge"]
    assert rows["charge"][5] == "the coordinator's command", rows["charge"]


def test_duplicates_experiment_ignores_every_repeat_and_the_early_compensation(saga):
    result = saga.run("duplicates", params_of("duplicates", sagas=6))
    assert result["ok"], (result.get("headline"), result.get("table"))
    assert result["summary"][0]["value"] > 0
    for view in result["sagas"]:
        assert view["current_state"] in (None, "REJECTED")
        assert any(i["status"] == "noop" for i in view["timeline"])


def test_a_saga_still_running_at_the_deadline_is_reported_as_running(sandbox_host):
    # A sandbox of its own: shipping is stopped, and each run may wait only 10% of its
    # time (3 s of happy-path's 30), so the stuck sagas outlive the run.
    box = start_sandbox(sandbox_host, "saga", {"wait_fraction": 0.1})
    try:
        box.control("stop", "shipping")
        result = box.run("happy-path", params_of("happy-path"))
        # The stuck choreography saga does not eat the orchestration saga's time:
        # the run's own view already shows the coordinator waiting on the cancel.
        orchestration_view = result["sagas"][1]
        assert orchestration_view["current_state"] == "CANCELLING_SHIPPING", orchestration_view
        # Neither saga finished, and the headline says so instead of quoting durations.
        assert "choreography still running" in result["headline"], result["headline"]
        assert "orchestration still running" in result["headline"], result["headline"]
        assert "Both sagas ran" not in result["headline"]
        # Shipping never heard of the stuck choreographed saga: three stores hold its steps,
        # not four; the coordinator's log alone still holds every step it sent.
        assert figure(result, "services to read to rebuild the saga (choreography)") == 3
        assert figure(result, "services to read to rebuild the saga (orchestration)") == 1
        # The metrics hook's figures, what the browser sees every second, show it running too.
        assert hooks.saga_counts(box.workdir)["sagas_running"] >= 1
        assert result["ok"] is False
        assert len(result["running"]["choreography"]) == 1
        assert any("still running" in note for note in result["notes"])
        ended = next(i for i in result["invariants"]["choreography"] if "stuck" in i["name"])
        assert not ended["ok"] and "1 still running" in ended["detail"]
        # The coordinator cannot confirm the cancel of a shipment that may exist: it waits.
        orchestrated = result["running"]["orchestration"][0]
        assert saga_view(box.workdir, orchestrated, mode="orchestration")["current_state"] == (
            "CANCELLING_SHIPPING"
        )
        box.control("start", "shipping")

        # Once shipping is back, both stalled sagas finish on their own.
        async def both_end() -> None:
            driver = scenario.SagaDriver(driver_context(box), "batch")
            try:
                for mode in ("choreography", "orchestration"):
                    await wait_ended(box, driver, mode, result["running"][mode])
            finally:
                await driver.close()

        asyncio.run(both_end())
        assert saga_view(box.workdir, orchestrated, mode="orchestration")["current_state"] == (
            "REJECTED"
        )
    finally:
        box.stop()


# -- the runtime refuses what the declaration does not allow ----------------------------------


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
def test_bad_parameters_fail_the_run_with_a_message_naming_them(saga, experiment, params, name):
    with pytest.raises(RunFailed) as failed:
        saga.run(experiment, params)
    assert "ParameterError" in failed.value.error, failed.value.error
    assert f"{name}:" in failed.value.error, failed.value.error


def test_lab_spec_names_every_experiment_and_exposes_grpc_services():
    assert LAB.slug == "saga"
    assert {e.name for e in LAB.experiments} == set(TIMEOUTS) == set(PARAMETERS)
    assert {s.name for s in LAB.services} == {
        "orders",
        "payments",
        "inventory",
        "shipping",
        "coordinator",
    }
    assert all(s.protocol == "grpc" for s in LAB.services)
    # Each service's entry point lives in its own folder.
    assert all(f".services.{s.name}.server_grpc:main" in s.main for s in LAB.services)


def test_saga_view_of_an_unknown_saga_is_empty_and_says_it_is_stuck(tmp_path):
    view = saga_view(tmp_path, "nope", mode="orchestration")
    assert view["timeline"] == [] and view["current_state"] is None
    assert view["invariants"][0]["ok"] is False
