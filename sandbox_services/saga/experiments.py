"""The Saga lesson's five experiments.

Each returns RESULT_SHAPE (headline, summary, charts, table, notes, ok) plus:

- ``saga``: the saga view of the run's featured saga (see ``timeline.saga_view``
  for the exact shape: mode, saga_id, timeline, lanes, state_machine, states,
  current_state, invariants);
- ``sagas``: one saga view per mode run (happy path and failure: side by side);
- ``invariants``: every invariant over every saga of the run, per mode:
  ``{mode: [{"name", "ok", "detail"}]}``;
- ``running``: ids of sagas still running when the run's time was up, per mode
  (reported as running, never as a success; ``ok`` is then False).
"""

from __future__ import annotations

import asyncio
import random
import time

from sandbox_services.saga.interface import FaultPlan

from . import records, results, scenario
from .scenario import SagaDriver
from .timeline import saga_view


async def happy_path(ctx, params: dict) -> dict:
    """Run one saga each way with nothing going wrong, and compare what each lets you see."""
    driver = SagaDriver(ctx, "happy-path")
    views, running, checks, held, triggered = [], {}, {}, {}, {}
    try:
        modes = ("choreography", "orchestration")
        for index, mode in enumerate(modes):
            driver.share_time(len(modes) - index)
            await ctx.progress(index / len(modes), f"running the {mode} saga")
            order = scenario.new_order(
                driver.config, quantity=params["quantity"], amount_cents=params["amount_cents"]
            )
            running[mode] = await driver.run(mode, [order])
            views.append(
                await asyncio.to_thread(saga_view, driver.workdir, order.saga_id, mode=mode)
            )
            checks[mode] = views[-1]["invariants"]
            held[mode] = await asyncio.to_thread(
                records.steps_held, driver.workdir, order.saga_id, mode=mode
            )
            triggered[mode] = await asyncio.to_thread(
                records.triggers, driver.workdir, order.saga_id, mode=mode
            )
    finally:
        await driver.close()
    choreo, orch = views
    durations = {v["mode"]: results.duration_ms(v) for v in views}
    # Read from the stores, not assumed: whose records you need to rebuild each saga.
    to_read = {mode: records.stores_to_read(held[mode]) for mode in modes}
    steps_done = {v["mode"]: results.forward_steps_done(v) for v in views}
    result = results.common_keys(views, running, checks)
    if any(running.values()):
        # A saga still running has no duration yet: never report it as if it had finished.
        took = [
            f"{mode} still running" if running[mode] else f"{mode} in {durations[mode]:.0f} ms"
            for mode in modes
        ]
        result["headline"] = (
            f"Not every saga finished in time: {', '.join(took)}. A saga still running is "
            "reported as running, not as a success."
        )
    else:
        result["headline"] = (
            f"Choreography ran {steps_done['choreography']} forward steps in "
            f"{durations['choreography']:.0f} ms, orchestration "
            f"{steps_done['orchestration']} in {durations['orchestration']:.0f} ms. To rebuild "
            f"one saga you read the records of {results.stores_text(to_read['choreography'])} "
            f"in choreography and of {results.stores_text(to_read['orchestration'])} in "
            "orchestration."
        )
    result["summary"] = [
        *(
            {
                "label": f"{mode} saga{' (still running)' if running[mode] else ''}",
                "value": durations[mode],
                "unit": "ms",
            }
            for mode in modes
        ),
        *(
            {
                "label": f"services to read to rebuild the saga ({mode})",
                "value": len(to_read[mode]),
                "unit": "",
            }
            for mode in modes
        ),
    ]
    result["table"] = results.side_by_side(choreo, orch, triggered)
    result["notes"] += [results.held_note(mode, held[mode], to_read[mode]) for mode in modes]
    return result


async def failure(ctx, params: dict) -> dict:
    """Make one step fail the way the learner picks; watch the compensations run in reverse."""
    driver = SagaDriver(ctx, "failure")
    plan = FaultPlan(fail_at=params["fail_at"], fail_kind=params["fail_kind"])
    views, running, checks = [], {}, {}
    try:
        modes = scenario.modes_of(params["mode"])
        for index, mode in enumerate(modes):
            driver.share_time(len(modes) - index)
            await ctx.progress(index / len(modes), f"running the {mode} saga")
            order = scenario.new_order(driver.config, plan)
            running[mode] = await driver.run(mode, [order])
            views.append(
                await asyncio.to_thread(saga_view, driver.workdir, order.saga_id, mode=mode)
            )
            checks[mode] = views[-1]["invariants"]
    finally:
        await driver.close()
    result = results.common_keys(views, running, checks)
    parts, reversed_all = [], True
    for view in views:
        undone = [
            f"{i['service']} {i['step']}"
            for i in view["timeline"]
            if i["kind"] == "compensation" and i["service"] != "coordinator"
        ]
        # Checked, not assumed: each compensation undoes a step earlier than the one before.
        reversed_all = reversed_all and results.in_reverse_order(undone)
        parts.append(f"{view['mode']}: {' -> '.join(undone) or 'nothing to undo'}")
    result["headline"] = (
        f"{params['fail_at']} failed ({params['fail_kind']}); compensations "
        f"{'in reverse order' if reversed_all else 'NOT in reverse order'}, {'; '.join(parts)}."
    )
    result["summary"] = [
        {
            "label": f"{v['mode']} compensations",
            "unit": "",
            "value": sum(
                1
                for i in v["timeline"]
                if i["kind"] == "compensation" and i["service"] != "coordinator"
            ),
        }
        for v in views
    ]
    result["table"] = {
        "columns": ["mode", "service", "step", "kind", "status", "detail"],
        "rows": [
            [v["mode"], i["service"], i["step"], i["kind"], i["status"], i["detail"]]
            for v in views
            for i in v["timeline"]
        ],
    }
    # What each mode did about the failed step itself, as its lane recorded it.
    result["notes"] += [results.failed_step_note(v, params["fail_at"]) for v in views]
    return result


async def crash(ctx, params: dict) -> dict:
    """Kill the coordinator (or a participant) between two steps; restart it; watch it finish."""
    target = params["target"]
    fail_at = None if params["then_fail_at"] == "none" else params["then_fail_at"]
    scenario.check_crash_order(target, params["after_step"], fail_at)
    driver = SagaDriver(ctx, "crash")
    mode = "orchestration" if target == "coordinator" else "choreography"
    markers: list[dict] = []
    try:
        if target == "coordinator":
            plan = FaultPlan(fail_at=fail_at, pause_after=params["after_step"])
        else:
            plan = FaultPlan(fail_at=fail_at, crash_after_commit=target)
        order = scenario.new_order(driver.config, plan)
        await ctx.progress(0.1, "starting the saga")
        await driver.start(mode, order)
        if target == "coordinator":
            crashed = await driver.wait_paused(order.saga_id)
        else:
            crashed = await driver.wait_down(target)
        killed_ns = time.time_ns()
        if crashed and target == "coordinator":
            # SIGKILL: no shutdown hook runs, only what the log committed survives.
            await ctx.control("kill", target)
        await ctx.progress(0.5, f"{target} is down mid-saga; starting it again")
        await ctx.control("start", target)
        markers.append(results.marker(target, order.saga_id, killed_ns))
        running = {mode: await driver.wait(mode, [order.saga_id])}
        view = await asyncio.to_thread(saga_view, driver.workdir, order.saga_id, mode=mode)
    finally:
        await driver.close()
    view["timeline"] = sorted([*view["timeline"], *markers], key=lambda i: i["start_ns"])
    result = results.common_keys([view], running, {mode: view["invariants"]})
    outcome = view["current_state"] or results.order_outcome(view)
    how = (
        "SIGKILLed while the saga sat between two steps"
        if target == "coordinator"
        else "exited right after committing its step, before publishing or acking"
    )
    result["headline"] = (
        f"The {target} {how}; after restart the saga ended {outcome}"
        f"{'' if crashed else ' (the crash point was never reached)'}."
    )
    result["table"] = {
        "columns": ["service", "step", "kind", "status", "detail"],
        "rows": [
            [i["service"], i["step"], i["kind"], i["status"], i["detail"]] for i in view["timeline"]
        ],
    }
    result["notes"].append(results.repeats_note(view, target))
    result["ok"] = result["ok"] and crashed
    return result


async def duplicates(ctx, params: dict) -> dict:
    """Deliver every message twice and one compensation before its step: nothing applies twice."""
    driver = SagaDriver(ctx, "duplicates")
    rng = random.Random(params["sagas"])
    modes = scenario.modes_of(params["mode"])
    views, running, checks, tables = [], {}, {}, []
    try:
        for index, mode in enumerate(modes):
            driver.share_time(len(modes) - index)
            await ctx.progress(index / len(modes), f"{mode}: duplicated deliveries")
            orders = [
                scenario.new_order(
                    driver.config,
                    FaultPlan(
                        duplicate=True,
                        fail_at=rng.choice((None, "inventory", "shipping")) if i % 2 else None,
                    ),
                    rng=rng,
                )
                for i in range(params["sagas"])
            ]
            early = scenario.new_order(driver.config, rng=rng)
            # Out of order: the compensation arrives before the step it undoes.
            if mode == "orchestration":
                await driver.refund_first(early)
            else:
                await driver.publish_event("StockFailed", early)
                await asyncio.sleep(0.2)
            ids = [o.saga_id for o in orders] + [early.saga_id]
            running[mode] = await driver.run(mode, [*orders, early])
            checks[mode] = await asyncio.to_thread(scenario.check, driver.workdir, mode, ids)
            views.append(
                await asyncio.to_thread(
                    saga_view, driver.workdir, early.saga_id, mode=mode, checked=ids
                )
            )
            tables += [[mode, *row] for row in scenario.deliveries(driver.workdir, ids)]
    finally:
        await driver.close()
    result = results.common_keys(views, running, checks)
    repeats = sum(row[4] for row in tables)
    twice = {
        mode: next(i for i in checks[mode] if i["name"].startswith("no step")) for mode in modes
    }
    result["headline"] = (
        f"{repeats} repeated deliveries or commands were recognised and ignored; "
        f"{'no step applied twice' if all(results.all_ok(c) for c in checks.values()) else 'an invariant failed'}."
    )
    result["summary"] = [{"label": "repeats ignored", "value": repeats, "unit": ""}]
    result["table"] = {
        "columns": [
            "mode",
            "service",
            "received",
            "applied",
            "repeats ignored",
            "no-op (tombstone or nothing to undo)",
        ],
        "rows": tables,
    }
    result["notes"] += [
        *(f"{mode}: {item['detail']}" for mode, item in twice.items()),
        *[
            results.early_compensation_note(
                v,
                records.ledger(driver.workdir, v["saga_id"]),
                records.order_status(driver.workdir, v["saga_id"]),
            )
            for v in views
        ],
    ]
    return result


async def batch(ctx, params: dict) -> dict:
    """Run N sagas with random failures per step; count outcomes and check the invariants."""
    driver = SagaDriver(ctx, "batch")
    modes = scenario.modes_of(params["mode"])
    # Tracing every one of hundreds of sagas would measure the tracer (FIELD-NOTES).
    sample_ratio = 0.05 if params["sagas"] > 50 else 1.0
    ctx.set_sample_ratio(sample_ratio)
    views, running, checks = [], {}, {}
    rows, counts_by_mode, percentiles = [], {}, {}
    try:
        for index, mode in enumerate(modes):
            driver.share_time(len(modes) - index)
            await ctx.progress(index / len(modes), f"{mode}: {params['sagas']} sagas")
            rng = random.Random(params["seed"])
            orders = [
                scenario.new_order(
                    driver.config,
                    scenario.random_plan(rng, params["failure_probability"], params["fail_kind"]),
                    rng=rng,
                    quantity=rng.randint(1, 3),
                    amount_cents=rng.randint(500, 20000),
                )
                for _ in range(params["sagas"])
            ]
            ids = [o.saga_id for o in orders]
            started = time.monotonic()
            running[mode] = await driver.run(mode, orders)
            elapsed = time.monotonic() - started
            checks[mode] = await asyncio.to_thread(scenario.check, driver.workdir, mode, ids)
            counts = await asyncio.to_thread(scenario.outcome_counts, driver.workdir, ids)
            latencies = await asyncio.to_thread(scenario.latencies_ms, driver.workdir, mode, ids)
            percentiles[mode] = [scenario.percentile(latencies, q) for q in (0.5, 0.9, 0.99)]
            counts_by_mode[mode] = counts
            rows.append(
                [
                    mode,
                    counts["approved"],
                    counts["rejected"],
                    counts["running"],
                    round(len(ids) / elapsed, 1),
                    *(round(v, 1) for v in percentiles[mode]),
                ]
            )
            featured = next((o for o in orders if o.plan.fail_at), orders[0])
            views.append(
                await asyncio.to_thread(
                    saga_view, driver.workdir, featured.saga_id, mode=mode, checked=ids
                )
            )
    finally:
        await driver.close()
    result = results.common_keys(views, running, checks)
    violations = sum(not i["ok"] for c in checks.values() for i in c)
    result["headline"] = (
        "; ".join(
            f"{m}: {c['approved']} approved, {c['rejected']} rejected, {c['running']} running"
            for m, c in counts_by_mode.items()
        )
        + f". Invariant violations: {violations}."
    )
    result["summary"] = [
        {"label": f"{row[0]} sagas/s", "value": row[4], "unit": "/s"} for row in rows
    ]
    result["table"] = {
        "columns": [
            "mode",
            "approved",
            "rejected",
            "running",
            "sagas/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
        ],
        "rows": rows,
    }
    result["charts"] = [
        {
            "title": "Outcomes",
            "type": "bar",
            "x_label": "outcome",
            "y_label": "sagas",
            "categories": ["approved", "rejected", "running"],
            "series": [
                {"name": m, "values": [c["approved"], c["rejected"], c["running"]]}
                for m, c in counts_by_mode.items()
            ],
        },
        {
            "title": "Saga latency",
            "type": "bar",
            "x_label": "percentile",
            "y_label": "ms",
            "categories": ["p50", "p90", "p99"],
            "series": [
                {"name": m, "values": [round(v, 1) for v in p]} for m, p in percentiles.items()
            ],
        },
    ]
    if sample_ratio < 1.0:
        result["notes"].append(
            f"Traces were sampled at {sample_ratio:.0%} during the batch; the saga view "
            "still comes from the services' own logs."
        )
    return result
