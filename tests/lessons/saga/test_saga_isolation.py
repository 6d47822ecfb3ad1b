"""The isolation experiment on the real runtime: a cancel lost without the semantic lock, kept with it.

The evidence is what Orders, Shipping and Payments wrote in their own SQLite
files (read-only) and the invariants computed from them, never the
experiment's verdict of itself. Its summary figures are then checked against
that evidence.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sandbox_services.saga import LAB, invariants, scenario
from sandbox_services.saga.knobs import PARAMETERS, SagaConfig
from sandbox_services.saga.stores import read_only, rows_for
from tests.sandboxes import Sandbox

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def saga(lesson_sandbox) -> Sandbox:
    return lesson_sandbox("saga")


def defaults(experiment: str, **values) -> dict:
    return {**{p.name: p.default for p in PARAMETERS[experiment]}, **values}


def stored(box: Sandbox, saga_id: str) -> dict:
    """Return one order's story from the services' own stores."""
    with read_only(box.workdir, "orders") as conn:
        status = rows_for(conn, "SELECT status FROM orders", [saga_id])[0]["status"]
        steps = {
            row["step"]: row
            for row in rows_for(
                conn, "SELECT step, status, start_ns, end_ns FROM step_log", [saga_id]
            )
        }
    with read_only(box.workdir, "shipping") as conn:
        shipment = rows_for(conn, "SELECT status FROM shipments", [saga_id])[0]["status"]
    with read_only(box.workdir, "payments") as conn:
        ledger = [row["kind"] for row in rows_for(conn, "SELECT kind FROM ledger", [saga_id])]
    return {"status": status, "steps": steps, "shipment": shipment, "ledger": sorted(ledger)}


def figure(result: dict, label: str) -> float:
    return next(item["value"] for item in result["summary"] if item["label"] == label)


def test_without_the_semantic_lock_approval_overwrites_the_cancel_and_with_it_the_saga_honours_it(
    saga,
):
    result = saga.run("isolation", defaults("isolation"))
    unlocked, locked = (view["saga_id"] for view in result["sagas"])

    off = stored(saga, unlocked)
    # The customer's cancel was applied, before the approval started ...
    assert off["steps"]["cancel"]["status"] == "done", off["steps"]
    assert off["steps"]["cancel"]["end_ns"] < off["steps"]["approve"]["start_ns"]
    # ... and the approval wrote over it: the order ships, the money is kept.
    assert off["steps"]["approve"]["status"] == "done"
    assert (off["status"], off["shipment"], off["ledger"]) == ("approved", "scheduled", ["charge"])

    on = stored(saga, locked)
    # The pending order was not written over: the request waited for the saga, which
    # refused to approve and undid every step.
    assert on["steps"]["cancel"]["status"] == "deferred", on["steps"]
    assert on["steps"]["cancel"]["end_ns"] < on["steps"]["approve"]["start_ns"]
    assert on["steps"]["approve"]["status"] == "refused"
    assert (on["status"], on["shipment"], on["ledger"]) == (
        "rejected",
        "cancelled",
        ["charge", "refund"],
    )

    # The four invariants hold either way: the lost cancel is a business anomaly they miss.
    for saga_id in (unlocked, locked):
        checked = invariants.check(saga.workdir, [saga_id], mode="orchestration")
        assert all(item["ok"] for item in checked), checked
    # The result's figures agree with the stores.
    assert figure(result, "cancels lost (semantic lock off)") == 1
    assert figure(result, "cancels lost (semantic lock on)") == 0
    assert result["ok"], result["notes"]


async def test_under_the_lock_a_cancel_of_an_approved_order_is_refused_not_applied(saga):
    ctx = SimpleNamespace(
        sandbox_id=saga.id,
        prefix=saga.prefix,
        workdir=saga.workdir,
        amqp_url=saga.host.config.amqp_url,
        settings={**LAB.settings, "wait_fraction": 0.1},
        address=saga.address,
        addresses=saga.addresses,
    )
    driver = scenario.SagaDriver(ctx, "batch")
    try:
        order = scenario.new_order(SagaConfig())
        assert await driver.run("orchestration", [order]) == []
        await driver.publish_event("CancelRequested", order)
        cancel = await driver.wait_recorded("orders", order.saga_id, "cancel")
    finally:
        await driver.close()
    assert cancel is not None and cancel["status"] == "refused", cancel
    story = stored(saga, order.saga_id)
    assert (story["status"], story["shipment"], story["ledger"]) == (
        "approved",
        "scheduled",
        ["charge"],
    )
