"""The payment experiment: charge then refund, beside authorize then release, when a later step fails.

Both sagas fail at the same later step and compensate, and both end with the
invariants holding. What differs is what the customer's card shows: a charge
and its refund are two movements on the statement, with the money gone in
between; a hold and its release never post, and only the available credit
dipped. Read from the payments ledger, the service's own record.

``drive_payment`` runs it; ``report_payment`` turns the ledgers into the result.
"""

from __future__ import annotations

import asyncio

from sandbox_services.saga.interface import FaultPlan

from . import records, results, scenario
from .scenario import SagaDriver
from .timeline import saga_view

STYLES = {"both": ("charge", "authorize"), "charge": ("charge",), "authorize": ("authorize",)}
TITLES = {"charge": "charge then refund", "authorize": "authorize then release"}
# Ledger kinds that move money (posted lines on a statement), and those that only hold it.
POSTED = ("charge", "refund")
HOLDS = ("hold", "release")
LINE_TEXT = {
    "charge": "card payment (posted)",
    "refund": "refund (posted)",
    "hold": "authorization hold (pending, not posted)",
    "release": "hold released",
}


async def authorize_capture(ctx, params: dict) -> dict:
    """Fail a step after the payment, once per payment style; compare the customer's statement."""
    return report_payment(await drive_payment(ctx, params), params)


async def drive_payment(ctx, params: dict) -> list[dict]:
    """Run one failing saga per payment style; return each one's ledger and saga view."""
    driver = SagaDriver(ctx, "authorize-capture")
    styles = STYLES[params["payment"]]
    runs = []
    try:
        for index, style in enumerate(styles):
            driver.share_time(len(styles) - index)
            await ctx.progress(index / len(styles), f"{TITLES[style]}: {params['fail_at']} fails")
            plan = FaultPlan(fail_at=params["fail_at"], authorize=style == "authorize")
            order = scenario.new_order(driver.config, plan, amount_cents=params["amount_cents"])
            running = await driver.run("orchestration", [order])
            ledger = await asyncio.to_thread(records.ledger, driver.workdir, order.saga_id)
            view = await asyncio.to_thread(
                saga_view, driver.workdir, order.saga_id, mode="orchestration"
            )
            runs.append({"style": style, "running": running, "ledger": ledger, "view": view})
    finally:
        await driver.close()
    return runs


def statement(ledger: list[dict]) -> dict:
    """Return what the customer's card shows for one order, from its ledger rows.

    ``posted``: lines that move money; ``holds``: authorization lines that never
    post; ``money_out_ms``: how long the money had left the account (charge to
    refund); ``credit_reduced_ms``: how long the available credit was lower
    (charge or hold, to refund or release).
    """
    at = {row["kind"]: row["at_ns"] for row in ledger}
    start = at.get("charge", at.get("hold"))
    end = at.get("refund", at.get("release"))
    return {
        "posted": sum(1 for row in ledger if row["kind"] in POSTED),
        "holds": sum(1 for row in ledger if row["kind"] == "hold"),
        "money_out_ms": (
            round((at["refund"] - at["charge"]) / 1e6, 1)
            if "charge" in at and "refund" in at
            else 0.0
        ),
        "credit_reduced_ms": round((end - start) / 1e6, 1) if start and end else None,
    }


def report_payment(runs: list[dict], params: dict) -> dict:
    """Turn the ledgers into the result: each customer's statement, side by side."""
    # Both sagas are orchestrated: each view is named by its variant, so the page tells them apart.
    views = [{**run["view"], "mode": f"orchestration, {TITLES[run['style']]}"} for run in runs]
    checks = {
        view["mode"]: run["view"]["invariants"] for view, run in zip(views, runs, strict=True)
    }
    running = {view["mode"]: run["running"] for view, run in zip(views, runs, strict=True)}
    result = results.common_keys(views, running, checks)
    seen = {run["style"]: statement(run["ledger"]) for run in runs}
    result["headline"] = (
        f"{params['fail_at'].capitalize()} refused, so the payment was undone. "
        + "; ".join(
            f"{TITLES[style]}: {figures['posted']} posted line(s) and {figures['holds']} hold(s) "
            f"on the customer's card, available credit lower for {figures['credit_reduced_ms']} ms"
            for style, figures in seen.items()
        )
        + "."
    )
    result["summary"] = [
        *(
            {"label": f"statement lines ({TITLES[style]})", "value": figures["posted"], "unit": ""}
            for style, figures in seen.items()
        ),
        *(
            {
                "label": f"credit reduced ({TITLES[style]})",
                "value": figures["credit_reduced_ms"],
                "unit": "ms",
            }
            for style, figures in seen.items()
        ),
    ]
    result["table"] = {
        "columns": ["payment", "ms after the first line", "line", "amount"],
        "rows": [
            [
                TITLES[run["style"]],
                round((row["at_ns"] - run["ledger"][0]["at_ns"]) / 1e6, 1),
                LINE_TEXT.get(row["kind"], row["kind"]),
                round(
                    (
                        row["amount_cents"]
                        if row["kind"] in ("refund", "release")
                        else -row["amount_cents"]
                    )
                    / 100,
                    2,
                ),
            ]
            for run in runs
            for row in run["ledger"]
        ],
    }
    result["notes"] += [
        "Measured here: the ledger rows Payments wrote and their times. The rest is a claim "
        "about card networks, not measured: a refund typically takes 5 to 10 business days to "
        "reach the customer's account, and a refund issued soon enough can instead be processed "
        "as a reversal that removes the original line (Stripe support, 'How long refunds take "
        "to process').",
        "Also a claim: an uncaptured authorization expires after about 7 days for most online "
        "card payments, and Visa's window for merchant-initiated ones is 5 (Stripe, 'Place a "
        "hold on a payment method'); some banks show the pending hold to the customer and "
        "alert them as they would for a payment (Omise documentation).",
        "This sandbox's sagas here always fail after the payment, so nothing is captured. A saga "
        "that succeeds must capture the hold after its point of no return, as a retriable "
        "step: a capture that fails after the goods ship is money the shop never gets.",
    ]
    return result
