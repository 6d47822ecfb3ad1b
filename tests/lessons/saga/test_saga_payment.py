"""Charge-then-refund beside authorize-then-release on the real runtime, read from Payments' ledger.

The evidence is the payments service's own ledger and the orders' statuses,
read-only from their SQLite files, and the invariants computed from them; the
experiment's figures are checked against that evidence.
"""

from __future__ import annotations

import grpc
import pytest

from sandbox_services.saga import invariants, scenario
from sandbox_services.saga.interface import FaultPlan
from sandbox_services.saga.knobs import PARAMETERS, SagaConfig
from sandbox_services.saga.services.participant.client import ParticipantClient
from sandbox_services.saga.stores import read_only, rows_for
from tests.sandboxes import Sandbox

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def saga(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("saga")


def defaults(**values) -> dict:
    return {**{p.name: p.default for p in PARAMETERS["authorize-capture"]}, **values}


def ledger(box: Sandbox, saga_id: str) -> list[tuple[str, int]]:
    with read_only(box.workdir, "payments") as conn:
        rows = rows_for(conn, "SELECT id, kind, amount_cents FROM ledger", [saga_id])
    return [(row["kind"], row["amount_cents"]) for row in sorted(rows, key=lambda r: r["id"])]


def order_status(box: Sandbox, saga_id: str) -> str:
    with read_only(box.workdir, "orders") as conn:
        return rows_for(conn, "SELECT status FROM orders", [saga_id])[0]["status"]


def figure(result: dict, label: str) -> float:
    return next(item["value"] for item in result["summary"] if item["label"] == label)


@pytest.mark.parametrize("fail_at", ["inventory", "shipping"])
def test_a_refund_is_a_second_movement_while_a_released_hold_never_posts(saga, fail_at):
    result = saga.run("authorize-capture", defaults(fail_at=fail_at, amount_cents=1234))
    charged, authorized = (view["saga_id"] for view in result["sagas"])
    assert ledger(saga, charged) == [("charge", 1234), ("refund", 1234)]
    assert ledger(saga, authorized) == [("hold", 1234), ("release", 1234)]
    for saga_id in (charged, authorized):
        assert order_status(saga, saga_id) == "rejected"
        checked = invariants.check(saga.workdir, [saga_id], mode="orchestration")
        assert all(item["ok"] for item in checked), checked
    # The statement figures are the ledger's posted lines, counted in the run.
    assert figure(result, "statement lines (charge then refund)") == 2
    assert figure(result, "statement lines (authorize then release)") == 0
    assert figure(result, "credit reduced (authorize then release)") > 0
    assert result["ok"], result["notes"]


async def test_the_money_invariant_catches_a_hold_left_open_on_a_rejected_order(saga):
    # A hold with no release on an order that ended rejected: the customer's credit stays
    # blocked. The invariant must say so, though no money moved.
    order = scenario.new_order(SagaConfig(), FaultPlan(authorize=True), amount_cents=700)
    async with grpc.aio.insecure_channel(saga.address("payments")) as channel:
        assert (
            await ParticipantClient("payments", channel, 5.0).execute("charge", order)
        ).status == ("done")
    async with grpc.aio.insecure_channel(saga.address("orders")) as channel:
        # Rejecting an order never created leaves a rejected row (its tombstone).
        assert (
            await ParticipantClient("orders", channel, 5.0).execute("reject", order)
        ).status == ("noop")
    assert ledger(saga, order.saga_id) == [("hold", 700)]
    money = next(
        item
        for item in invariants.check(saga.workdir, [order.saga_id], mode="orchestration")
        if item["name"] == invariants.NAMES["money"]
    )
    assert not money["ok"] and "still held" in money["detail"], money
