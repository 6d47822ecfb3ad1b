"""The saga drawing on a harness page: views side by side, state machine arrows, downtime, running.

Results are built here in the shape sandbox_services/labs/saga/timeline.py
documents, so each test controls exactly what the drawing is given.
"""

from itertools import pairwise

from playwright.sync_api import expect

HARNESS = "/tests/browser/harness/result.html"
MS = 1_000_000
START = 1_700_000_000_000_000_000
FORWARD = [
    ("orders", "create"),
    ("payments", "charge"),
    ("inventory", "reserve"),
    ("shipping", "schedule"),
    ("orders", "approve"),
]
STATES = [
    "STARTED",
    "CREATING_ORDER",
    "CHARGING_PAYMENT",
    "RESERVING_STOCK",
    "SCHEDULING_SHIPPING",
    "APPROVING_ORDER",
    "APPROVED",
    "CANCELLING_SHIPPING",
    "RELEASING_STOCK",
    "REFUNDING_PAYMENT",
    "REJECTING_ORDER",
    "REJECTED",
]
# As timeline.state_edges() builds them: both chains, then refusal and error/timeout edges.
EDGES = [
    *[[a, b] for a, b in pairwise(STATES[:7])],
    *[[a, b] for a, b in pairwise(STATES[7:])],
    ["CREATING_ORDER", "REJECTED"],
    ["CREATING_ORDER", "REJECTING_ORDER"],
    ["CHARGING_PAYMENT", "REJECTING_ORDER"],
    ["CHARGING_PAYMENT", "REFUNDING_PAYMENT"],
    ["RESERVING_STOCK", "REFUNDING_PAYMENT"],
    ["RESERVING_STOCK", "RELEASING_STOCK"],
    ["SCHEDULING_SHIPPING", "RELEASING_STOCK"],
    ["SCHEDULING_SHIPPING", "CANCELLING_SHIPPING"],
    ["APPROVING_ORDER", "CANCELLING_SHIPPING"],
]


def entry(service, step, at_ms, took_ms=3, kind="forward", status="done", saga_id="s1"):
    return {
        "service": service,
        "step": step,
        "kind": kind,
        "status": status,
        "detail": "",
        "start_ns": START + at_ms * MS,
        "end_ns": START + (at_ms + took_ms) * MS,
        "trace_id": None,
        "span_id": None,
        "saga_id": saga_id,
    }


def view(mode, saga_id, timeline, states=()):
    return {
        "mode": mode,
        "saga_id": saga_id,
        "timeline": timeline,
        "lanes": (["coordinator"] if mode == "orchestration" else [])
        + ["orders", "payments", "inventory", "shipping"],
        "state_machine": STATES,
        "state_edges": EDGES,
        "states": list(states),
        "current_state": states[-1] if states else None,
        "invariants": [{"name": "none stuck", "ok": True, "detail": ""}],
    }


def saga_result(views, running):
    return {
        "headline": "two sagas",
        "summary": [],
        "charts": [],
        "notes": [],
        "ok": not any(running.values()),
        "saga": views[0],
        "sagas": views,
        "invariants": {v["mode"]: v["invariants"] for v in views},
        "running": running,
    }


def happy_orchestration(saga_id="o1", kill_after=None):
    """An approved orchestration saga; with kill_after, the coordinator is down for 200 ms there."""
    timeline, at = [], 0
    for service, step in FORWARD:
        timeline.append(entry("coordinator", step, at, took_ms=6, saga_id=saga_id))
        timeline.append(entry(service, step, at + 1, saga_id=saga_id))
        at += 10
        if step == kill_after:
            killed = entry(
                "coordinator", "process", at, took_ms=200, kind="failure", saga_id=saga_id
            )
            killed["status"] = "killed"
            timeline.append(killed)
            at += 210
    return view("orchestration", saga_id, timeline, STATES[:7])


def show(page, static_site, result, width="36rem"):
    page.goto(f"{static_site}{HARNESS}")
    page.wait_for_function("window.harnessReady === true")
    page.evaluate("([r, w]) => window.harness.show(r, w)", [result, width])


def test_each_mode_gets_a_view_side_by_side_when_wide_and_stacked_when_narrow(
    page, static_site, artifacts
):
    choreography = view(
        "choreography",
        "c1",
        [entry(s, step, i * 10, saga_id="c1") for i, (s, step) in enumerate(FORWARD)],
    )
    result = saga_result([choreography, happy_orchestration()], {})
    show(page, static_site, result, width="90rem")

    views = page.locator(".saga")
    expect(views).to_have_count(2)
    assert [views.nth(i).get_attribute("data-mode") for i in range(2)] == [
        "choreography",
        "orchestration",
    ]
    left, right = views.nth(0).bounding_box(), views.nth(1).bounding_box()
    assert abs(left["y"] - right["y"]) < 2 and right["x"] > left["x"] + left["width"] - 1
    page.locator("#stage").screenshot(path=str(artifacts / "saga-view-wide.png"))

    page.evaluate(
        "w => document.getElementById('stage').style.setProperty('--stage-width', w)", "36rem"
    )
    left, right = views.nth(0).bounding_box(), views.nth(1).bounding_box()
    assert right["y"] >= left["y"] + left["height"] - 1
    # Both views share one time scale: the shorter saga's last bar ends further left.
    # (the bars: a label near the right edge is moved left to stay inside the drawing)
    assert (
        views.nth(0).locator(".saga-step .saga-bar").last.bounding_box()["x"]
        < (views.nth(1).locator(".saga-step .saga-bar").last.bounding_box()["x"])
    )
    # The saga keys are drawn, not dumped as JSON.
    expect(page.locator(".result-extra")).to_have_count(0)
    assert page.js_errors == []


def test_state_machine_draws_an_arrow_per_edge_and_marks_the_path_taken(page, static_site):
    show(page, static_site, saga_result([happy_orchestration()], {}))

    graph = page.locator(".saga[data-mode=orchestration] .saga-graph")
    expect(graph.locator(".saga-node")).to_have_count(len(STATES))
    expect(graph.locator(".saga-edge")).to_have_count(len(EDGES))
    taken = graph.locator(".saga-edge.is-taken").evaluate_all(
        "paths => paths.map(p => [p.dataset.from, p.dataset.to])"
    )
    assert taken == [[a, b] for a, b in pairwise(STATES[:7])]
    expect(graph.locator(".saga-node.is-current")).to_have_attribute("data-state", "APPROVED")
    # A compensation state sits under the step it undoes.
    box = graph.locator('[data-state="RESERVING_STOCK"] rect').bounding_box()
    under = graph.locator('[data-state="RELEASING_STOCK"] rect').bounding_box()
    assert abs(box["x"] - under["x"]) < 1 and under["y"] > box["y"] + box["height"]
    expect(page.locator(".saga[data-mode=orchestration]")).to_have_attribute(
        "data-outcome", "approved"
    )


def test_live_coordinator_states_light_the_machine(page, static_site):
    show(page, static_site, saga_result([happy_orchestration()], {}))

    page.evaluate("window.harness.lightLiveStates({CHARGING_PAYMENT: 2})")

    node = page.locator('.saga-graph [data-state="CHARGING_PAYMENT"]')
    expect(node).to_have_attribute("data-live", "2")
    expect(node).to_have_class("saga-node is-visited is-live")
    expect(node.locator(".saga-live-count")).to_have_text("2 now")
    page.evaluate("window.harness.lightLiveStates({})")
    expect(node).to_have_attribute("data-live", "0")


def test_a_killed_process_is_a_downtime_bar_across_its_lane(page, static_site, artifacts):
    show(page, static_site, saga_result([happy_orchestration(kill_after="charge")], {}))

    downtime = page.locator('.saga-downtime[data-service="coordinator"]')
    expect(downtime).to_have_count(1)
    expect(downtime).to_have_attribute("data-status", "killed")
    lane = page.locator('.saga-lane[data-lane="coordinator"]').bounding_box()
    bar = downtime.locator("rect").bounding_box()
    assert bar["height"] > 0.8 * lane["height"]
    # It is not a step: the ten real steps keep their numbers.
    expect(page.locator(".saga-step")).to_have_count(10)
    expect(page.locator('.saga-step[data-kind="failure"]')).to_have_count(0)
    page.locator(".saga").screenshot(path=str(artifacts / "saga-view-downtime.png"))


def test_a_saga_still_running_is_marked_running_not_a_success(page, static_site):
    unfinished = view(
        "choreography",
        "c1",
        [entry(s, step, i * 10, saga_id="c1") for i, (s, step) in enumerate(FORWARD[:2])],
    )
    show(
        page,
        static_site,
        saga_result([unfinished, happy_orchestration()], {"choreography": ["c1", "c2"]}),
    )

    running = page.locator(".saga[data-mode=choreography]")
    expect(running).to_have_attribute("data-running", "true")
    expect(running).to_have_attribute("data-outcome", "running")
    expect(running.locator(".saga-outcome")).to_have_text("still running")
    expect(running.locator(".saga-running-note")).to_contain_text("1 other saga")
    expect(page.locator(".saga[data-mode=orchestration]")).to_have_attribute(
        "data-running", "false"
    )
    expect(page.locator(".result")).to_have_attribute("data-ok", "false")


def test_clicking_a_step_or_the_gap_above_its_bar_asks_for_its_span(page, static_site):
    saga = happy_orchestration()
    for index, item in enumerate(saga["timeline"]):
        item["span_id"] = f"{index:016x}"
    show(page, static_site, saga_result([saga], {}))
    page.evaluate(
        """() => {
            window.selected = [];
            document.addEventListener("lab:select-span", (e) => window.selected.push(e.detail.spanId));
        }"""
    )

    payments = page.locator('.saga-step[data-service="payments"]')
    payments.locator("text").click()
    payments.locator(".saga-bar").click()
    # Between the label and the bar lies only the step's hit target.
    label = payments.locator("text").bounding_box()
    bar = payments.locator(".saga-bar").bounding_box()
    page.mouse.click(bar["x"] + bar["width"] / 2, (label["y"] + label["height"] + bar["y"]) / 2)
    payments.focus()
    page.keyboard.press("Enter")

    span = f"{3:016x}"  # payments charge is the fourth entry
    assert page.evaluate("window.selected") == [span] * 4
